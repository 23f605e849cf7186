"""What a new user meets first in ``python -m onethinker_verl.evaluate``: a run that failed every row does not
exit 0, partial failures are bounded by ``--max-failed-fraction``, a rerun retries failed rows, a wrong
``--model`` is one line, every option has one help text, messages say what is true, and the headline plot
names its metric and stays readable with 1 and with 23 benchmarks."""

import json
import logging
import shutil
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import onethinker_verl
from onethinker_verl.evaluate import report
from onethinker_verl.evaluate.__main__ import build_parser, main
from onethinker_verl.evaluate.generation import GenerationFailed, GenerationSummary, TooManyFailedRows
from onethinker_verl.evaluate.reference.outputs import BenchmarkOutput, ScoredBenchmark, score_benchmark
from onethinker_verl.evaluate.suite import SUITES

PACKAGE = Path(onethinker_verl.__file__).parent
TINY_BENCHMARK = PACKAGE / "evaluate" / "sample" / "eval_tiny.json"
MEDIA_ROOT = PACKAGE / "data" / "sample"
FAST = ["--backend", "hf", "--max-new-tokens", "4", "--video-max-frames", "4"]


def error_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.fixture
def tiny_bench(tmp_path):
    """The bundled three-row benchmark (media paths relative to the package's sample folder)."""
    path = tmp_path / "bench" / "eval_tiny.json"
    path.parent.mkdir()
    shutil.copy(TINY_BENCHMARK, path)
    return path


# ------------------------------------------------------------------------------------- failed rows


def test_every_row_failing_exits_1_with_the_first_reason_and_a_rerun_with_media_root_retries_them(
        tiny_vl_checkpoint, tiny_bench, tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the rows' relative media paths do not resolve here
    out = tmp_path / "out"
    arguments = ["generate", "--model", str(tiny_vl_checkpoint("qwen3_vl")), "--inputs", str(tiny_bench), "--out-dir", str(out), *FAST]
    assert main(arguments) == 1
    (line,) = error_lines(caplog)
    assert line.startswith("all 3 rows failed generation")
    assert "first: eval_tiny_eval.json row 1: image file not found: images/scene_a.png" in line
    assert "--media-root" in line

    caplog.clear()
    assert main([*arguments, "--media-root", str(MEDIA_ROOT)]) == 0
    assert error_lines(caplog) == []
    results = json.loads((out / "eval_tiny_eval.json").read_text())["results"]
    assert [row.get("generation_error") for row in results] == [None, None, None]  # retried, not skipped
    assert all(isinstance(row["output"], str) for row in results)


def test_partial_failures_exit_4_above_max_failed_fraction_and_0_within_it(tiny_vl_checkpoint, tiny_bench, tmp_path, caplog):
    rows = json.loads(tiny_bench.read_text())
    rows.append({**rows[1], "problem_id": "tiny-missing", "path": "videos/not_there.mp4"})
    tiny_bench.write_text(json.dumps(rows))
    arguments = ["generate", "--model", str(tiny_vl_checkpoint("qwen3_vl")), "--inputs", str(tiny_bench),
                 "--out-dir", str(tmp_path / "out"), "--media-root", str(MEDIA_ROOT), *FAST]
    assert main(arguments) == 4  # default 0.01
    (line,) = error_lines(caplog)
    assert line.startswith("1 of 4 rows (25.0%) failed generation, more than --max-failed-fraction 0.01 allows")
    assert "row 4: video file not found" in line
    caplog.clear()
    assert main([*arguments, "--max-failed-fraction", "0.25"]) == 0
    assert error_lines(caplog) == []
    with pytest.raises(SystemExit) as exited:
        main([*arguments, "--max-failed-fraction", "2"])
    assert exited.value.code == 2


def test_run_exits_1_before_scoring_when_every_row_fails(tiny_vl_checkpoint, tmp_path, caplog):
    bench = tmp_path / "bench"  # benchmark files without their media
    bench.mkdir()
    shutil.copy(TINY_BENCHMARK, bench / "eval_charades.json")
    out = tmp_path / "run"
    assert main(["run", "--bench-dir", str(bench), "--model", str(tiny_vl_checkpoint("qwen3_vl")), "--out-dir", str(out), *FAST]) == 1
    (line,) = error_lines(caplog)
    assert line.startswith("all 3 rows failed generation") and "--media-root" in line
    assert not (out / "report.json").exists()


def test_generation_summary_check():
    GenerationSummary(rows=200, failed=2).check(0.01)  # within 1 %
    with pytest.raises(TooManyFailedRows, match="3 of 200 rows"):
        GenerationSummary(rows=200, failed=3, first_failure="f row 9: boom").check(0.01)
    with pytest.raises(GenerationFailed, match="hold no rows"):
        GenerationSummary(rows=0, failed=0).check(0.01)
    GenerationSummary(rows=5, failed=5, first_failure="f row 1: boom").check(1.0)  # 1 accepts any
    assert TooManyFailedRows.exit_code == 4 and GenerationFailed.exit_code == 1


# ------------------------------------------------------------------------------------ --model


@pytest.mark.parametrize("kind", ["missing", "folder without config.json", "file"])
def test_a_model_that_is_not_a_checkpoint_folder_is_one_line(tiny_bench, tmp_path, caplog, kind):
    model = tmp_path / "model"
    if kind == "folder without config.json":
        model.mkdir()
    elif kind == "file":
        model.write_text("not a model")
    assert main(["generate", "--model", str(model), "--backend", "hf", "--inputs", str(tiny_bench), "--out-dir", str(tmp_path / "o")]) == 1
    (line,) = error_lines(caplog)
    assert line.startswith(f"--model {model}:") and "folder with config.json" in line and "\n" not in line
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------- help


def subcommand_parsers():
    parser = build_parser()
    (subcommands,) = [action for action in parser._actions if action.dest == "command"]
    return subcommands.choices


def test_every_option_of_every_subcommand_has_help_with_at_most_one_default():
    parsers = subcommand_parsers()
    assert set(parsers) == {"generate", "score", "sam2", "run"}
    for command, parser in parsers.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.dest == "help":
                continue
            text = formatter._expand_help(action) if action.help else ""
            option = action.option_strings[0]
            assert text.strip(), f"{command} {option} has no help text"
            assert text.lower().count("default") <= 1, f"{command} {option}: {text!r}"
    assert "max-failed-fraction" in parsers["generate"].format_help() and "exit codes" in parsers["run"].format_help()


def test_prompt_templates_help_names_one_default():
    text = " ".join(subcommand_parsers()["generate"].format_help().split())
    assert "--prompt-templates PROMPT_TEMPLATES prompt template YAML (default: the packaged training templates) --" in text


# ---------------------------------------------------------------------------------- messages


def segmentation_row(with_masks: bool) -> dict:
    row = dict(json.loads(TINY_BENCHMARK.read_text())[2])
    row["output"] = '<answer>{"boxes": [10, 10, 500, 500]}</answer>'
    if with_masks:
        row["pred_masks"] = row["segmentation_output"]["segmentation_rle"]
    return row


def test_segmentation_warning_says_what_is_true(caplog):
    score_benchmark(BenchmarkOutput("seg_one", [segmentation_row(False)], {}, "seg_one.json"))
    assert "seg_one: none of the 1 segmentation rows has pred_masks (run the sam2 step), so it has no mask metrics" in caplog.text
    assert "cover the other" not in caplog.text
    caplog.clear()
    scored = score_benchmark(BenchmarkOutput("seg_two", [segmentation_row(False), segmentation_row(True)], {}, "seg_two.json"))
    assert "seg_two: 1 of 2 segmentation rows have no pred_masks (run the sam2 step); mask metrics cover the other 1" in caplog.text
    assert "image/gIoU" in scored.metrics


# ------------------------------------------------------------------------------ headline plot


def scored(name: str, metric: str, value: float) -> ScoredBenchmark:
    return ScoredBenchmark(name, [], {"overall/acc": 0.5, metric: value}, {"rows": 1})


@pytest.mark.parametrize("count", [1, 23])
def test_headline_plot_names_each_metric_and_nothing_covers_a_bar(tmp_path, monkeypatch, count):
    names = [Path(name).stem.removeprefix("eval_") for name in SUITES["onethinker"]][:count]
    metrics = ["video/J&F", "temporal grounding/tiou/mean", "spatial grounding/iou/R@0.5"]
    benchmarks = [scored(name, metrics[index % 3], 0.99 - 0.04 * index) for index, name in enumerate(names)]
    figures = []
    save = report._save_figure
    monkeypatch.setattr(report, "_save_figure", lambda figure, path: figures.append(figure) or save(figure, path))
    published = {names[0]: {"metric": metrics[0], "value": 50.0}}
    (png, *_) = report.write_reference_plots(benchmarks, published, tmp_path)
    assert png.name == "headline.png" and png.read_bytes()[:4] == b"\x89PNG"

    figure = figures[0]
    (axes,) = figure.axes
    canvas = FigureCanvasAgg(figure)  # pyplot detached the closed figure from its canvas
    canvas.draw()  # lays the figure out as it was saved (tight_layout included)
    renderer = canvas.get_renderer()
    labels = [label for label in axes.get_yticklabels() if label.get_text()]
    assert [label.get_text() for label in labels] == [f"{b.name}\n{report.headline_metric(b.metrics)}" for b in benchmarks]
    assert "metric" in axes.get_xlabel() and "metric" in axes.get_title()
    bars = [patch.get_window_extent(renderer) for patch in axes.patches if patch.get_width() > 0]
    assert len(bars) == count + 1  # ours for each, published for the first
    legend = axes.get_legend().get_window_extent(renderer)
    label_boxes = [label.get_window_extent(renderer) for label in labels]
    assert not legend.overlaps(axes.get_window_extent(renderer))  # outside the plotting area
    assert not legend.overlaps(axes.title.get_window_extent(renderer))
    assert not any(box.overlaps(bar) for box in [*label_boxes] for bar in bars)
    assert not any(a.overlaps(b) for i, a in enumerate(label_boxes) for b in label_boxes[i + 1 :])  # labels apart
    figure_box = figure.bbox
    assert all(figure_box.containsx(box.x0) and figure_box.containsy(box.y1) for box in [*label_boxes, legend])


# ------------------------------------------------------------------------------------- nothing to score

@pytest.mark.parametrize("protocol", ["reference", "strict"])
@pytest.mark.parametrize("name, text", [("eval_empty.json", "[]"), ("predictions.jsonl", "")])
def test_score_with_no_rows_exits_1_naming_the_file_and_writes_no_report(tmp_path, caplog, protocol, name, text):
    empty = tmp_path / name
    empty.write_text(text)
    output = tmp_path / "report.json"
    assert main(["score", "--protocol", protocol, "--predictions", str(empty), "--output", str(output)]) == 1
    errors = error_lines(caplog)
    assert len(errors) == 1 and errors[0].startswith(f"nothing to score in {empty}: no "), errors
    assert not output.exists()  # no report of 0.0 over no rows
