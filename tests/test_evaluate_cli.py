"""End to end through the CLI: the project's predictions JSONL with every task family, masks and bad lines,
scored by the strict protocol (`--protocol strict`) and by the reference protocol (the default)."""

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from onethinker_verl.evaluate.__main__ import main
from onethinker_verl.evaluate.sam2_bridge import EXIT_SAM2_MISSING, sam2_available



def square(top: int, left: int, side: int = 4) -> np.ndarray:
    mask = np.zeros((20, 20), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def rle(mask: np.ndarray, as_list: bool = False) -> dict:
    if as_list:  # uncompressed: run lengths of the column-major flattening, starting with zeros
        flat = mask.flatten(order="F").astype(int)
        changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
        return {"size": list(mask.shape), "counts": np.diff(np.concatenate([[0], changes])).tolist()}
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode("ascii")}


def answer(value) -> str:
    return f"<think>t</think><answer>{json.dumps(value) if not isinstance(value, str) else value}</answer>"


LINES = [
    {"benchmark": "mmmu", "problem_type": "multiple choice", "data_type": "image", "response": answer("B"), "ground_truth": "<answer>B</answer>"},
    {"benchmark": "mmmu", "problem_type": "multiple choice", "data_type": "image", "response": answer("42"), "ground_truth": "A"},
    {"benchmark": "charades", "problem_type": "temporal grounding", "data_type": "video", "response": answer({"time": [0, 10]}), "ground_truth": '{"time": [5, 10]}'},
    {"benchmark": "charades", "problem_type": "temporal grounding", "data_type": "video", "response": answer("oops"), "ground_truth": '{"time": [5, 10]}'},
    {"benchmark": "refcoco_testA", "problem_type": "spatial grounding", "data_type": "image", "response": answer({"boxes": [0, 0, 10, 10]}), "ground_truth": '<answer>{"boxes": [0, 0, 10, 5]}</answer>'},
    {"benchmark": "got10k", "problem_type": "tracking", "data_type": "video", "response": answer({"boxes": {"1": [0, 0, 4, 4]}}), "ground_truth": '{"boxes": {"1": [0, 0, 4, 4], "2": [0, 0, 4, 4]}}'},
    # image segmentation: shifted squares (I 8, U 24), and an exact match given as an uncompressed RLE
    {"benchmark": "refcoco_seg", "problem_type": "segmentation", "data_type": "image", "response": "", "ground_truth": "{}", "pred_masks": rle(square(2, 4)), "gt_masks": rle(square(2, 2))},
    {"benchmark": "refcoco_seg", "problem_type": "segmentation", "data_type": "image", "response": "", "ground_truth": "{}", "pred_masks": rle(square(8, 8), as_list=True), "gt_masks": rle(square(8, 8))},
    # video: frame 0 shifted by 2 (J 1/3, F 10/16), frame 1 missing from the prediction (0, 0), frame 2 both empty (1, 1)
    {"benchmark": "mevis", "problem_type": "segmentation", "data_type": "video", "response": "", "ground_truth": "{}",
     "pred_masks": {"0": rle(square(2, 4))}, "gt_masks": {"0": rle(square(2, 2)), "1": rle(square(2, 2)), "2": None}},
]
BAD_LINES = ["{not json", json.dumps({"benchmark": "x", "problem_type": "math"}), json.dumps({**LINES[4], "ground_truth": "[1, 2"})]


@pytest.fixture
def predictions(tmp_path):
    path = tmp_path / "predictions.jsonl"
    rows = [json.dumps(line) for line in LINES[:5]] + BAD_LINES + [json.dumps(line) for line in LINES[5:]]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_report_metrics_and_skipped_lines(predictions, tmp_path):
    output = tmp_path / "report.json"
    assert main(["--predictions", str(predictions), "--output", str(output), "--protocol", "strict"]) == 0
    report = json.loads(output.read_text())
    assert report["mmmu"]["accuracy"] == 0.5 and report["mmmu"]["count"] == 2 and report["mmmu"]["unparsed"] == 1
    assert report["charades"]["miou"] == pytest.approx(0.25)
    assert (report["charades"]["r@0.5"], report["charades"]["r@0.7"]) == (0.5, 0.0)
    assert report["charades"]["unparsed"] == 1
    assert report["refcoco_testA"]["acc@0.5"] == 1.0 and report["refcoco_testA"]["miou"] == pytest.approx(0.5)
    assert report["got10k"]["ao"] == pytest.approx(0.5) and report["got10k"]["sr@0.75"] == pytest.approx(0.5)
    assert report["refcoco_seg"]["giou"] == pytest.approx((1 / 3 + 1) / 2)
    assert report["refcoco_seg"]["ciou"] == pytest.approx((8 + 16) / (24 + 16))
    assert report["mevis"]["j"] == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert report["mevis"]["f"] == pytest.approx((10 / 16 + 0 + 1) / 3)
    assert report["mevis"]["j&f"] == pytest.approx((report["mevis"]["j"] + report["mevis"]["f"]) / 2)
    overall = report["overall"]
    assert overall["skipped_lines"] == 3 and [s["line"] for s in overall["skipped"]] == [6, 7, 8]
    assert overall["count"] == len(LINES)


def test_strict_fails_on_first_malformed_line(predictions, tmp_path):
    assert main(["--predictions", str(predictions), "--output", str(tmp_path / "r.json"), "--protocol", "strict", "--strict"]) == 2
    assert not (tmp_path / "r.json").exists()


def test_markdown_tables_and_png_plots(predictions, tmp_path):
    markdown, plots = tmp_path / "report.md", tmp_path / "plots"
    args = ["--predictions", str(predictions), "--output", str(tmp_path / "r.json"), "--markdown", str(markdown), "--plots", str(plots), "--protocol", "strict"]
    assert main(args) == 0
    text = markdown.read_text()
    assert "| benchmark | count | unparsed | miou | r@0.3 | r@0.5 | r@0.7 |" in text
    assert "| charades | 2 | 1 | 25.0 | 50.0 | 50.0 | 0.0 |" in text
    assert "| mevis | 1 | 0 |" in text
    assert "](plots/recall_tracking.png)" in text
    for name in ("bars_question_answering.png", "recall_temporal_grounding.png", "bars_video_segmentation.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_protocol_writes_plots_into_the_folder_given(tmp_path):
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(json.dumps(line) for line in LINES) + "\n")
    plots = tmp_path / "elsewhere" / "figures"
    args = ["--predictions", str(clean), "--output", str(tmp_path / "r.json"), "--plots", str(plots)]
    assert main(args) == 0
    written = sorted(path.name for path in plots.iterdir())
    assert "headline.png" in written and "recall_curves.png" in written
    assert not (tmp_path / "plots").exists()
    assert "(elsewhere/figures/headline.png)" in (tmp_path / "r.md").read_text()


@pytest.mark.skipif(sam2_available(), reason="the absent-SAM2 path only")
def test_sam2_step_exits_cleanly_without_sam2(tmp_path, caplog):
    output = tmp_path / "eval_seg_x_eval.json"
    output.write_text(json.dumps({"results": [], "metrics": {}, "meta": {}}))
    assert main(["sam2", "--outputs", str(output), "--checkpoint", "x.pt"]) == EXIT_SAM2_MISSING
    assert "SAM2 is not installed" in caplog.text


def test_reference_protocol_is_the_default_on_todays_jsonl(predictions, tmp_path):
    output = tmp_path / "report.json"
    # the malformed lines of the fixture are not predictions at all: the reference reader refuses the file
    assert main(["--predictions", str(predictions), "--output", str(output)]) == 1
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join(json.dumps(line) for line in LINES) + "\n")
    assert main(["score", "--predictions", str(clean), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["mmmu"]["metrics"]["multiple choice/acc"] == 0.5
    assert report["charades"]["metrics"]["temporal grounding/tiou/R@0.5"] == 0.5
    assert report["refcoco_testA"]["metrics"]["spatial grounding/iou/mean"] == pytest.approx(0.5)
    assert report["got10k"]["metrics"]["tracking/miou_gt/mean"] == pytest.approx(0.5)
    # image rows whose (empty) answer has no prompt are left out, as the reference leaves them out, masks or not
    assert report["refcoco_seg"]["meta"]["segmentation"]["left_out"] == {"no-prompts": 2}
    assert "image/gIoU" not in report["refcoco_seg"]["metrics"]
    # video: frame 0 shifted (J 1/3, F 2/3 with the reference's boundary), frame 1 missing (0, 0); the frame
    # without ground truth does not count
    assert report["mevis"]["metrics"]["video/J"] == pytest.approx(1 / 6)
    assert report["mevis"]["metrics"]["video/F"] == pytest.approx(1 / 3)
    assert (tmp_path / "report.md").read_text().startswith("# Benchmark evaluation (reference protocol)")
