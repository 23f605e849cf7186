"""Prompt builder, template files, row validation and the streaming JSON reader."""

import json

import pytest

from onethinker_verl.data import records
from onethinker_verl.data.corpus import (
    MALFORMED_GROUND_TRUTH,
    MEDIA_DOES_NOT_MATCH,
    MISSING_GROUND_TRUTH,
    MISSING_QUESTION,
    UNKNOWN_DATA_TYPE,
    UNKNOWN_PROBLEM_TYPE,
    FieldNames,
    RowRejected,
    parse_row,
)
from onethinker_verl.data.prompts import build_prompt_text, load_templates
from onethinker_verl.data.tasks import PROBLEM_TYPES, TASK_NAMES, task_data_source, task_name


def test_prompt_puts_question_options_instruction_and_task_text_in_order():
    templates = load_templates()
    text = build_prompt_text(
        "What is shown?", "multiple choice", "image", ["A. cat", "B. dog"], num_images=1, num_videos=0,
        templates=templates,
    )
    lines = text.split("\n")
    assert lines[0] == "<image>What is shown?"
    assert lines[1:4] == [templates.options_header, "A. cat", "B. dog"]
    assert text.index(templates.instruction) > text.index("B. dog")
    assert text.endswith(templates.task_instruction("multiple choice", "image"))


def test_every_task_has_an_instruction_and_segmentation_differs_by_modality():
    templates = load_templates()
    for problem_type in PROBLEM_TYPES:
        assert "<answer>" in templates.task_instruction(problem_type, "video")
    assert templates.task_instruction("segmentation", "image") != templates.task_instruction("segmentation", "video")
    assert '"time"' in templates.task_instruction("segmentation", "video")


def test_question_with_its_own_placeholders_keeps_them_and_options_only_for_multiple_choice():
    templates = load_templates()
    text = build_prompt_text("Compare <image> with <image>.", "numerical", "image", ["A. x"], 2, 0, templates)
    assert text.startswith("Compare <image> with <image>.")
    assert templates.options_header not in text
    assert text.count("<image>") == 2


def test_replacement_template_file_changes_the_prompt(tmp_path):
    document = {
        "options_header": "Choices:",
        "instruction": "Think in <think></think>, answer in <answer></answer>.",
        "tasks": {name: f"Answer style for {name}." for name in PROBLEM_TYPES},
    }
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(document))  # JSON is valid YAML
    templates = load_templates(path)
    text = build_prompt_text("Q?", "OCR", "image", None, 1, 0, templates)
    assert text.endswith("Answer style for OCR.")
    assert "Think in <think></think>" in text


def test_template_file_missing_a_task_names_the_file_and_the_task(tmp_path):
    document = {"options_header": "Options:", "instruction": "x", "tasks": {"OCR": "y"}}
    path = tmp_path / "partial.yaml"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"partial\.yaml.*'multiple choice'"):
        load_templates(path)


def _row(**overrides):
    row = {
        "problem": "Where is the dog?",
        "answer": '<answer>{"boxes": [1, 2, 3, 4]}</answer>',
        "problem_type": "Spatial Grounding",
        "data_type": "image",
        "images": ["a.png"],
    }
    row.update(overrides)
    return {key: value for key, value in row.items() if value is not None}


def test_parse_row_canonicalises_task_and_reads_earlier_formats():
    row = parse_row(_row())
    assert (row.problem_type, row.data_type, row.images) == ("spatial grounding", "image", ["a.png"])
    legacy = parse_row(_row(answer=None, solution="<answer>3</answer>", problem_type="numerical", images=None,
                            data_type="video", path="v.mp4"))
    assert (legacy.ground_truth, legacy.videos, legacy.images) == ("<answer>3</answer>", ["v.mp4"], [])
    mixed = parse_row(_row(problem_type="OCR", answer="x", images=None, data_type="video-image", path="v.mp4",
                           additional_path="frame.png"))
    assert (mixed.videos, mixed.images) == (["v.mp4"], ["frame.png"])
    remapped = parse_row(_row(images=None, media_file="b.png"), FieldNames(media="media_file"))
    assert remapped.images == ["b.png"]
    assert task_data_source(row.problem_type, row.data_type) == "onethinker/spatial_grounding/image"


def test_every_task_has_one_snake_case_name_used_by_its_data_source():
    assert TASK_NAMES == (
        "multiple_choice", "numerical", "regression", "ocr", "open_ended", "math", "temporal_grounding",
        "spatial_grounding", "spatial_temporal_grounding", "tracking", "segmentation",
    )
    assert [task_name(problem_type) for problem_type in PROBLEM_TYPES] == list(TASK_NAMES)
    assert task_name(" Multiple Choice ") == task_name("multiple_choice") == "multiple_choice"
    assert task_name(None) == task_name("") == "unknown"
    # the task part of a data source is the task's name (verl's validation keys start with it)
    assert task_data_source("spatial-temporal grounding", "video") == "onethinker/spatial_temporal_grounding/video"
    assert task_data_source("open-ended", "image") == "onethinker/open_ended/image"
    assert task_data_source("OCR", "image") == "onethinker/ocr/image"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"problem_type": "counting"}, UNKNOWN_PROBLEM_TYPE),
        ({"data_type": "audio"}, UNKNOWN_DATA_TYPE),
        ({"problem": "  "}, MISSING_QUESTION),
        ({"answer": None}, MISSING_GROUND_TRUTH),
        ({"answer": "<answer> </answer>"}, MISSING_GROUND_TRUTH),
        ({"answer": "<answer>[1, 2, 3, 4]</answer>"}, MALFORMED_GROUND_TRUTH),
        ({"answer": "left part"}, MALFORMED_GROUND_TRUTH),
        ({"data_type": "video"}, MEDIA_DOES_NOT_MATCH),
        ({"problem": "<image><image> Where?"}, MEDIA_DOES_NOT_MATCH),
    ],
)
def test_invalid_rows_are_rejected_with_their_reason(overrides, reason):
    with pytest.raises(RowRejected) as caught:
        parse_row(_row(**overrides))
    assert caught.value.reason == reason


def test_json_array_reader_streams_the_same_rows_as_json_load(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "_CHUNK_CHARS", 5)  # every element straddles many refills
    rows = [{"n": i, "text": 'quote " brace } bracket ] \\ ' * (i % 3), "nested": [{"a": [i]}]} for i in range(30)]
    rows += ["a bare string, with comma", 7, None]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows, indent=2))
    got = list(records.iter_records(path))
    assert [record.value for record in got] == json.load(open(path))
    assert [record.position for record in got] == list(range(1, len(rows) + 1))


def test_json_array_reader_isolates_a_malformed_element_and_reports_truncation(tmp_path):
    good = [json.dumps({"n": i}) for i in range(5)]
    path = tmp_path / "rows.json"
    path.write_text("[" + ",".join(good[:2] + ['{"n": 2,, }'] + good[3:]) + ", {\"n\": 5")
    got = list(records.iter_records(path))
    assert [record.position for record in got] == [1, 2, 3, 4, 5, 6]
    assert [record.error is not None for record in got] == [False, False, True, False, False, True]
    assert "truncated" in got[-1].error


def test_json_lines_reader_numbers_rows_by_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"n": 1}\n\n{broken\n{"n": 2}\n')
    got = list(records.iter_records(path))
    assert [(record.position, record.value) for record in got] == [(1, {"n": 1}), (3, None), (4, {"n": 2})]
