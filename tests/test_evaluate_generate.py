"""From a checkpoint to the report: generation with the transformers backend on a tiny random Qwen-VL
model over the bundled tiny benchmark (image multiple choice, video temporal grounding, image
segmentation), resume, failed media, masks, scoring and the suite command."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import onethinker_verl
from onethinker_verl.evaluate import generation
from onethinker_verl.evaluate.__main__ import main
from onethinker_verl.evaluate.generation import GenerationSettings, generate

PACKAGE = Path(onethinker_verl.__file__).parent
TINY_BENCHMARK = PACKAGE / "evaluate" / "sample" / "eval_tiny.json"
MEDIA_ROOT = PACKAGE / "data" / "sample"
FAST = dict(backend="hf", max_new_tokens=4, video_max_frames=4, batch_size=2, media_root=str(MEDIA_ROOT))


@pytest.fixture
def benchmark(tmp_path):
    """The bundled tiny benchmark plus one row whose video does not exist."""
    rows = json.loads(TINY_BENCHMARK.read_text())
    rows.append({**rows[1], "problem_id": "tiny-missing", "path": "videos/not_there.mp4"})
    path = tmp_path / "eval_tiny.json"
    path.write_text(json.dumps(rows))
    return path


class CountingBackend:
    """Wraps a real backend and records how many rows it was asked to generate."""

    def __init__(self, inner):
        self.inner, self.rows = inner, 0

    def image_patch_size(self):
        return self.inner.image_patch_size()

    def generate(self, conversations):
        self.rows += len(conversations)
        return self.inner.generate(conversations)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_generate_writes_the_reference_output_format(tiny_vl_checkpoint, benchmark, tmp_path, family):
    (output,) = generate([benchmark], tmp_path / "out", str(tiny_vl_checkpoint(family)), GenerationSettings(**FAST))
    assert output.name == "eval_tiny_eval.json"
    payload = json.loads(output.read_text())
    results, metrics, meta = payload["results"], payload["metrics"], payload["meta"]
    assert [row["problem_id"] for row in results] == ["tiny-1", "tiny-2", "tiny-3", "tiny-missing"]
    for row in results[:3]:
        assert isinstance(row["output"], str) and "generation_error" not in row
        assert "<answer>" in row["output"] or row["prediction"] == row["output"].strip()  # no tag: whole output
        assert 0.0 <= row["accuracy"] <= 1.0
    assert "tiou" in results[1]["components"]  # temporal grounding keeps its component
    assert results[2]["predicted_answer_norm"] == results[2]["prediction"]  # segmentation, for the SAM2 step
    failed = results[3]
    assert failed["output"] is None and "video file not found" in failed["generation_error"]
    assert failed["accuracy"] == 0.0 and failed["components"] == {"tiou": 0.0}
    assert meta["generation_failed_rows"] == 1 and meta["benchmark"] == "tiny"
    assert meta["generation"]["max_new_tokens"] == 4 and meta["generation"]["video_fps"] == 2.0
    assert set(metrics) >= {"overall/acc", "multiple choice/acc", "segmentation/acc", "temporal grounding/tiou/R@0.5"}
    assert metrics["temporal grounding/tiou/R@0.5"] == np.mean([r["components"]["tiou"] >= 0.5 for r in results if r["problem_type"] == "temporal grounding"])


def test_rerun_resumes_after_the_rows_already_written(tiny_vl_checkpoint, benchmark, tmp_path, monkeypatch):
    checkpoint, out = str(tiny_vl_checkpoint("qwen3_vl")), tmp_path / "out"
    settings = GenerationSettings(**FAST)
    (output,) = generate([benchmark], out, checkpoint, settings)
    first = json.loads(output.read_text())
    # a crash after the first batch: only its rows are on disk
    output.write_text(json.dumps({**first, "results": first["results"][:2]}))
    counting = {}
    real_make_backend = generation.make_backend
    monkeypatch.setattr(generation, "make_backend", lambda *a: counting.setdefault("b", CountingBackend(real_make_backend(*a))))
    generate([benchmark], out, checkpoint, settings)
    assert counting["b"].rows == 1  # rows 3 and 4; row 4's media is missing, so only row 3 reaches the model
    resumed = json.loads(output.read_text())
    assert [r["output"] for r in resumed["results"]] == [r["output"] for r in first["results"]]  # greedy
    generate([benchmark], out, checkpoint, settings)
    assert counting["b"].rows == 1  # nothing left to do
    # an output of some other input is refused, not overwritten
    other = json.loads(benchmark.read_text())
    other[0]["problem_id"] = "someone-else"
    benchmark.write_text(json.dumps(other))
    with pytest.raises(ValueError, match="belongs to another input"):
        generate([benchmark], out, checkpoint, settings)


def perfect_mask_rle(row: dict) -> dict:
    return row["segmentation_output"]["segmentation_rle"]


def test_suite_run_through_to_the_report(tiny_vl_checkpoint, tmp_path, caplog):
    bench = tmp_path / "bench"
    bench.mkdir()
    for name in ("images", "videos"):
        shutil.copytree(MEDIA_ROOT / name, bench / name)
    rows = json.loads(TINY_BENCHMARK.read_text())
    (bench / "eval_charades.json").write_text(json.dumps(rows[:2]))
    (bench / "eval_seg_refcoco.json").write_text(json.dumps([rows[2]]))
    out = tmp_path / "run"
    arguments = ["run", "--bench-dir", str(bench), "--model", str(tiny_vl_checkpoint("qwen3_vl")), "--out-dir", str(out),
                 "--backend", "hf", "--max-new-tokens", "4", "--video-max-frames", "4"]
    assert main(arguments) == 0
    assert "21 of 23 onethinker benchmark files are not in" in caplog.text
    assert "segmentation files are reported without mask metrics" in caplog.text
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"charades", "seg_refcoco"}
    assert "temporal grounding/tiou/R@0.7" in report["charades"]["metrics"]
    markdown = (out / "report.md").read_text()
    assert "| charades | 2 | `temporal grounding/tiou/mean` |" in markdown
    assert "- refcoco_testA: spatial grounding/iou/R@0.5 93.7 (eval_bench)" in markdown  # published, not run here
    assert (out / "plots" / "headline.png").read_bytes()[:4] == b"\x89PNG"

    # masks from another segmenter (here: the ground truth itself) are scored like SAM2's
    segmentation = out / "generation" / "eval_seg_refcoco_eval.json"
    payload = json.loads(segmentation.read_text())
    payload["results"][0]["pred_masks"] = perfect_mask_rle(payload["results"][0])
    payload["results"][0]["output"] = "<answer>" + json.dumps({"boxes": [562, 383, 891, 711]}) + "</answer>"
    segmentation.write_text(json.dumps(payload))
    scored = tmp_path / "scored.json"
    assert main(["score", "--outputs", str(segmentation), "--output", str(scored), "--plots", str(tmp_path / "p")]) == 0
    metrics = json.loads(scored.read_text())["seg_refcoco"]["metrics"]
    assert metrics["image/gIoU"] == 1.0 and metrics["image/cIoU"] == 1.0 and metrics["segmentation/acc"] == 0.0
    assert "| `image/cIoU` | 100.0 |" in scored.with_suffix(".md").read_text()
    rescored = json.loads((tmp_path / "scored_scored" / "seg_refcoco.json").read_text())  # per-row results
    assert rescored["results"][0]["status"] == "ok" and rescored["results"][0]["reward"]["IoU"] == 1.0
    assert rescored["avg_rewards"] == {"image/IoU": 1.0, "image/gIoU": 1.0, "image/cIoU": 1.0}


def test_published_table_file_is_valid():
    from onethinker_verl.evaluate.report import load_published

    published = load_published()
    assert published["seg_reasonvos"] == {**published["seg_reasonvos"], "metric": "video/J&F", "value": 54.9}
    assert published["refcoco_testA"]["value"] == 93.7 and published["mmmu"]["runner"] == "vlmevalkit"
