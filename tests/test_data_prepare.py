"""The converters in data_prep/: accounting of every row, rejection reasons, output layouts."""

import importlib.util
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from onethinker_verl.data.corpus import REJECT_REASONS
from onethinker_verl.data.sample import sample_dir, sample_file
from onethinker_verl.data.tasks import task_data_source

REPO = Path(__file__).resolve().parents[1]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"data_prep_{name}", REPO / "data_prep" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare_rl = _load_script("prepare_rl")
prepare_sft = _load_script("prepare_sft")
prepare_eval = _load_script("prepare_eval")


def _rejections(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def messy_corpus(tmp_path):
    """Rows with one problem each (and the reason each must be rejected for, None = must be written)."""
    media = tmp_path / "media"
    media.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(media / "good.png")
    whole = (media / "good.png").read_bytes()
    Image.new("RGB", (128, 128)).save(media / "full.png")
    (media / "truncated.png").write_bytes((media / "full.png").read_bytes()[: len(whole) // 2])
    shutil.copy(Path(sample_dir()) / "videos" / "glide_red.mp4", media / "good.mp4")
    (media / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)

    def row(problem_id, **fields):
        base = {"problem_id": problem_id, "problem": "What is it?", "answer": "<answer>A</answer>",
                "problem_type": "multiple choice", "data_type": "image", "images": ["good.png"],
                "options": ["A. red", "B. blue"]}
        base.update(fields)
        return json.dumps({k: v for k, v in base.items() if v is not None})

    lines = [
        (row(1), None),
        (row(2, problem_type="temporal grounding", data_type="video", images=None, videos=["good.mp4"],
             answer='{"time": [0.5, 2.0]}'), None),
        ('{"problem_id": 3, "problem": "unterminated', "malformed JSON"),
        (row(4, problem_type="counting"), "unknown problem type"),
        (row(5, answer=None), "missing ground truth"),
        (row(6, images=["nowhere.png"]), "media file missing"),
        (row(7, images=["truncated.png"]), "media unreadable"),
        (row(8, problem_type="numerical", data_type="video", images=None, videos=["broken.mp4"], answer="3"),
         "media unreadable"),
        ("[1, 2]", "not a JSON object"),
        (row(10, problem_type="numerical", answer="4"), None),
        (row(11, problem_type="numerical", answer="5"), None),
        (row(12, problem_type="numerical", answer="6"), "over per-task cap"),
    ]
    path = tmp_path / "messy.jsonl"
    path.write_text("\n".join(text for text, _ in lines) + "\n")
    return path, media, [reason for _, reason in lines]


def test_messy_file_every_row_written_or_rejected_with_its_reason(messy_corpus, tmp_path, capsys):
    path, media, expected = messy_corpus
    out = tmp_path / "out"
    prepare_rl.main(["--input", str(path), "--media-root", str(media), "--output", str(out),
                     "--check-media", "decode", "--max-per-task", "2"])
    rejected = _rejections(out / "rejected.jsonl")
    train = pq.read_table(out / "train.parquet").to_pylist()
    assert len(train) + len(rejected) == len(expected)
    assert {r["position"]: r["reason"] for r in rejected} == {
        position: reason for position, reason in enumerate(expected, start=1) if reason is not None
    }
    assert all(r["reason"] in REJECT_REASONS for r in rejected)
    assert sorted(row["extra_info"]["index"] for row in train) == [
        position for position, reason in enumerate(expected, start=1) if reason is None
    ]
    summary = capsys.readouterr().out
    assert f"rejected: {len(rejected)}" in summary and "media unreadable" in summary


def test_existence_check_lets_broken_files_through_and_off_lets_missing_ones(messy_corpus, tmp_path):
    path, media, _ = messy_corpus
    reasons = {}
    for mode in ("exists", "off"):
        out = tmp_path / mode
        prepare_rl.main(["--input", str(path), "--media-root", str(media), "--output", str(out), "--check-media", mode])
        reasons[mode] = Counter(r["reason"] for r in _rejections(out / "rejected.jsonl"))
    assert "media unreadable" not in reasons["exists"] and reasons["exists"]["media file missing"] == 1
    assert "media file missing" not in reasons["off"]


def test_json_array_input_and_the_verl_row_layout(tmp_path):
    rows = [json.loads(line) for line in Path(sample_file("rl_train.jsonl")).read_text().splitlines()]
    array_file = tmp_path / "rows.json"
    array_file.write_text(json.dumps(rows, indent=1))
    out = tmp_path / "out"
    prepare_rl.main(["--input", str(array_file), "--media-root", sample_dir(), "--output", str(out), "--val-size", "5"])
    train = pq.read_table(out / "train.parquet").to_pylist()
    val = pq.read_table(out / "val.parquet").to_pylist()
    assert (len(train), len(val)) == (len(rows) - 5, 5)
    for written in train + val:
        source = rows[written["extra_info"]["index"] - 1]
        info = written["extra_info"]
        assert info["id"] == source["problem_id"] and info["question"] == source["problem"]
        assert written["data_source"] == task_data_source(info["problem_type"], info["data_type"])
        assert written["reward_model"] == {"style": "rule", "ground_truth": source["answer"]}
        assert written["images"] + written["videos"] == source.get("images", []) + source.get("videos", [])
        (message,) = written["prompt"]
        assert message["role"] == "user" and source["problem"] in message["content"]
        assert message["content"].count("<image>") + message["content"].count("<video>") == 1


def test_val_ratio_and_answer_key_remapping(tmp_path):
    rows = [{"problem": f"q{i}", "solution_text": str(i), "problem_type": "math", "data_type": "text"} for i in range(200)]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out"
    prepare_rl.main(["--input", str(path), "--output", str(out), "--val-ratio", "0.25", "--seed", "3",
                     "--answer-key", "solution_text"])
    train, val = pq.read_table(out / "train.parquet"), pq.read_table(out / "val.parquet")
    assert train.num_rows + val.num_rows == 200 and 25 <= val.num_rows <= 75
    assert {row["ground_truth"] for row in val.column("reward_model").to_pylist()} <= {str(i) for i in range(200)}


def test_sft_conversion_writes_verl_messages_and_rejects_bad_conversations(tmp_path):
    good = json.loads(Path(sample_file("sft_video.json")).read_text())
    bad = [
        {"messages": [{"role": "user", "content": "<video>Q?"}], "videos": ["videos/glide_red.mp4"]},
        {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}],
         "videos": ["videos/glide_red.mp4"]},
    ]
    path = tmp_path / "sft.json"
    path.write_text(json.dumps(good + bad))
    out = tmp_path / "out"
    prepare_sft.main(["--input", str(path), "--media-root", sample_dir(), "--output", str(out), "--video-fps", "1"])
    written = pq.read_table(out / "train.parquet").to_pylist()
    assert len(written) == len(good)
    assert [r["reason"] for r in _rejections(out / "rejected.jsonl")] == ["malformed messages", "media does not match data type"]
    first = written[0]
    assert first["messages"] == good[0]["messages"]
    assert first["images"] == []
    (video,) = first["videos"]
    assert Path(video["video"]).is_absolute() and Path(video["video"]).is_file()
    assert video["fps"] == 1.0 and video["max_frames"] > 0


def test_eval_rows_carry_what_the_evaluator_reads(tmp_path):
    out = tmp_path / "eval.jsonl"
    prepare_eval.main(["--input", sample_file("eval_sample.json"), "--media-root", sample_dir(), "--output", str(out)])
    source = json.loads(Path(sample_file("eval_sample.json")).read_text())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(source)
    for row, raw in zip(rows, source, strict=True):
        assert row["benchmark"] == "sample"
        assert row["ground_truth"] == raw["solution"] and row["data_type"] == raw["data_type"]
        assert row["prompt"].count("<video>") == len(row["videos"]) and row["prompt"].count("<image>") == len(row["images"])
        assert all(Path(p).is_file() for p in row["images"] + row["videos"])
    mixed = next(row for row in rows if row["data_type"] == "video-image")
    assert (len(mixed["videos"]), len(mixed["images"])) == (1, 1)


def test_decode_check_in_parallel_names_every_broken_file_with_the_decoders_reason(messy_corpus, tmp_path):
    path, media, _ = messy_corpus
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        prepare_rl.main(["--input", str(path), "--media-root", str(media), "--output", str(out),
                         "--check-media", "decode", "--workers", str(workers)])
        rejected = sorted(_rejections(out / "rejected.jsonl"), key=lambda r: r["position"])
        outputs[workers] = (rejected, pq.read_table(out / "train.parquet").to_pylist())
    assert outputs[1] == outputs[2]  # same rows in the same order, same rejections and reasons
    unreadable = {r["position"]: r["detail"] for r in outputs[2][0] if r["reason"] == "media unreadable"}
    assert str(media / "truncated.png") in unreadable[7] and "OSError" in unreadable[7]
    assert str(media / "broken.mp4") in unreadable[8] and "Error" in unreadable[8]


def test_prompt_length_column_counts_what_verls_length_filter_counts(tmp_path, caplog):
    from onethinker_verl.tiny_model import tiny_vl_processor, tiny_vl_tokenizer
    from verl.trainer.ppo.utils import create_rl_dataset
    from omegaconf import OmegaConf

    from onethinker_verl.data.dataset import OneThinkerDataset

    processor = tiny_vl_processor("qwen3_vl", tiny_vl_tokenizer())
    model = tmp_path / "processor"
    processor.save_pretrained(model)
    out = tmp_path / "out"
    prepare_rl.main(["--input", sample_file("rl_train.jsonl"), "--media-root", sample_dir(), "--output", str(out),
                     "--prompt-length-model", str(model), "--workers", "1", "--video-fps", "1.0"])
    table = pq.read_table(out / "train.parquet")
    lengths = table.column("prompt_length").to_pylist()
    assert len(lengths) == table.num_rows and min(lengths) > 0
    assert b"onethinker.prompt_length" in table.schema.metadata
    video_rows = [n for n, videos in zip(lengths, table.column("videos").to_pylist()) if videos]
    assert video_rows and max(video_rows) > max(lengths[i] for i, v in enumerate(table.column("videos").to_pylist()) if not v) // 2

    limit = sorted(lengths)[len(lengths) // 2]
    base = {"media_root": sample_dir(), "video_fps": 1.0, "max_prompt_length": limit, "cache_dir": str(tmp_path / "c"),
            "custom_cls": {"path": "pkg://onethinker_verl.data.dataset", "name": "OneThinkerDataset"},
            "prompt_key": "prompt", "filter_overlong_prompts_workers": None}
    ids = lambda dataset: sorted(dataset[i]["extra_info"]["id"] for i in range(len(dataset)))
    # verl's own filter: decodes every row's media through the processor at start-up
    by_verl = create_rl_dataset([str(out / "train.parquet")], OmegaConf.create(
        {**base, "filter_overlong_prompts": True, "filter_by_prompt_length_column": False}), processor.tokenizer, processor)
    # the column: no decoding, same rows
    by_column = create_rl_dataset([str(out / "train.parquet")], OmegaConf.create(
        {**base, "filter_overlong_prompts": False}), processor.tokenizer, processor)
    assert isinstance(by_column, OneThinkerDataset) and by_column.dropped_overlong == sum(n > limit for n in lengths)
    assert ids(by_column) == ids(by_verl) and 0 < len(by_column) < len(lengths)
    # lengths measured at 1 fps, a run at 2 fps: the filter still runs, and says it may be wrong
    with caplog.at_level(logging.WARNING, logger="onethinker_verl.data.dataset"):
        create_rl_dataset([str(out / "train.parquet")], OmegaConf.create({**base, "video_fps": 2.0}), processor.tokenizer,
                          processor)
    assert any("prompt_length column was measured with media settings" in r.getMessage() for r in caplog.records)
