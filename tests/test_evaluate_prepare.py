"""data_prep/prepare_eval.py carries (and checks) the segmentation ground truth that mask scoring needs."""

import importlib.util
import json
from pathlib import Path

import pyarrow.parquet as pq

import onethinker_verl
from onethinker_verl.data.sample import sample_dir

REPO = Path(__file__).resolve().parents[1]
TINY_BENCHMARK = Path(onethinker_verl.__file__).parent / "evaluate" / "sample" / "eval_tiny.json"


def load_prepare_eval():
    spec = importlib.util.spec_from_file_location("data_prep_prepare_eval_e14", REPO / "data_prep" / "prepare_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segmentation_ground_truth_is_carried_and_checked(tmp_path):
    rows = json.loads(TINY_BENCHMARK.read_text())
    image_segmentation = rows[2]
    mask = image_segmentation["segmentation_output"]["segmentation_rle"]
    video = {**image_segmentation, "problem_id": "video-ok", "data_type": "video", "path": "videos/appear_blue.mp4", "fps": 2,
             "segmentation_output": {"frames": ["00000", "00001"], "segmentation_rle": {"00001": mask}}}
    bad = [
        {**video, "problem_id": "stray-frame", "segmentation_output": {"frames": ["00000"], "segmentation_rle": {"00007": mask}}},
        {**video, "problem_id": "no-fps", "fps": 0},
        {**image_segmentation, "problem_id": "no-resolution", "resolution": None},
    ]
    source = tmp_path / "eval_seg_tiny.json"
    source.write_text(json.dumps(rows + [video] + bad))
    output = tmp_path / "prepared.jsonl"
    parquet = tmp_path / "val.parquet"
    arguments = ["--input", str(source), "--media-root", sample_dir(), "--output", str(output), "--verl-parquet", str(parquet)]
    assert load_prepare_eval().main(arguments) == 0
    written = {row["id"]: row for row in map(json.loads, output.read_text().splitlines())}
    assert set(written) == {"tiny-1", "tiny-2", "tiny-3", "video-ok"}
    assert {row["benchmark"] for row in written.values()} == {"seg_tiny"}  # eval_ dropped
    image = written["tiny-3"]
    assert image["resolution"] == {"width": 128, "height": 128} and image["gt_masks"] == mask
    assert image["segmentation_output"] == image_segmentation["segmentation_output"]
    assert written["video-ok"]["fps"] == 2 and written["video-ok"]["gt_masks"] == {"00000": None, "00001": mask}
    assert "gt_masks" not in written["tiny-1"]
    rejected = {row["id"]: row for row in map(json.loads, output.with_suffix(".rejected.jsonl").read_text().splitlines())}
    assert set(rejected) == {"stray-frame", "no-fps", "no-resolution"}
    assert "frames not in 'frames'" in json.dumps(rejected["stray-frame"])
    assert all(row["reason"] == "malformed ground truth" for row in rejected.values())
    # the same accepted rows for data.val_files: benchmark marker and absolute media paths
    validation = pq.read_table(parquet).to_pylist()
    assert [row["extra_info"]["id"] for row in validation] == ["tiny-1", "tiny-2", "tiny-3", "video-ok"]
    assert {row["data_source"] for row in validation} == {row["extra_info"]["benchmark"] for row in validation} == {"seg_tiny"}
    assert all(Path(path).is_absolute() and Path(path).is_file() for row in validation for path in row["images"] + row["videos"])
