"""The SAM2 step's prompting protocol and its checks, with a stand-in that records the calls made to SAM2's
video predictor (tests/test_evaluate_sam2_real.py runs the real one): per-row resolution / fps / frame list,
the reference's prompt order, the prompted frame, propagation both ways, loud failure on a mismatched frame
folder, frames ffmpeg cannot extract."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask

from onethinker_verl.evaluate.reference.outputs import BenchmarkOutput, score_benchmark
from onethinker_verl.evaluate.sam2_bridge import FrameMismatchError, RowLeftOut, Sam2VideoSegmenter, masks_for_row

SIZE = 20


def square_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[4:10, 4:10] = True
    return mask


def rle(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}


class FakeVideoPredictor:
    """Records SAM2 video-predictor calls; every frame's mask is the square."""

    def __init__(self):
        self.calls = []

    def init_state(self, video_path):
        frames = sorted(p for p in __import__("os").listdir(video_path) if p.endswith(".jpg"))
        self.calls.append(("init_state", len(frames)))
        return {"num_frames": len(frames)}

    def _logits(self):
        return torch.from_numpy(np.where(square_mask(), 5.0, -5.0)).float()[None, None]

    def add_new_points_or_box(self, state, frame_idx, obj_id, points=None, labels=None, box=None):
        self.calls.append(("prompt", frame_idx, None if box is None else box.tolist(),
                           None if points is None else points.tolist(), None if labels is None else labels.tolist()))
        return frame_idx, [obj_id], self._logits()

    def propagate_in_video(self, state, start_frame_idx, reverse):
        self.calls.append(("propagate", start_frame_idx, reverse))
        order = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, state["num_frames"])
        for index in order:
            yield index, [1], self._logits()

    def reset_state(self, state):
        self.calls.append(("reset",))


@pytest.fixture
def segmenter():
    built = Sam2VideoSegmenter.__new__(Sam2VideoSegmenter)  # without sam2.build_sam
    built.predictor, built.device = FakeVideoPredictor(), "cpu"
    return built


ANSWER = {"time": 1.0, "boxes": [100, 100, 600, 600], "positive_points": [[300, 300]], "negative_points": [[900, 900]]}


def video_row(tmp_path, frames_on_disk: int = 4, frame_size: int = SIZE) -> dict:
    folder = tmp_path / "clip"
    folder.mkdir(exist_ok=True)
    for index in range(frames_on_disk):
        Image.new("RGB", (frame_size, frame_size)).save(folder / f"{index:06d}.jpg")
    return {
        "problem_type": "segmentation", "data_type": "video", "path": "clip.mp4", "fps": 2,
        "resolution": {"width": SIZE, "height": SIZE}, "solution": "{}",
        "output": "<answer>" + json.dumps(ANSWER) + "</answer>",
        "segmentation_output": {"frames": ["f0", "f1", "f2", "f3"], "segmentation_rle": {"f0": rle(square_mask()), "f2": rle(square_mask())}},
    }


def test_video_prompts_on_the_predicted_time_and_propagates_both_ways(tmp_path, segmenter):
    row = video_row(tmp_path)
    row["pred_masks"] = masks_for_row(row, segmenter, str(tmp_path))
    calls = segmenter.predictor.calls
    # 0-1000 -> 20 px: 100 -> 2, 600 -> 12, 300 -> 6, 900 -> 18; frame round(1.0 s * 2 fps) = 2
    assert calls[1] == ("prompt", 2, [2, 2, 12, 12], None, None)  # the box alone first
    assert calls[2] == ("prompt", 2, [2, 2, 12, 12], [[6, 6], [18, 18]], [1, 0])  # then points + labels + box
    assert calls[3:5] == [("propagate", 2, False), ("propagate", 2, True)]
    assert sorted(row["pred_masks"]) == ["0", "1", "2", "3"]
    scored = score_benchmark(BenchmarkOutput("vos", [row]))
    assert scored.results[0]["reward"] == {"J": 1.0, "F": 1.0, "J&F": 1.0}


def test_prompt_frame_is_clipped_to_the_frame_list(tmp_path, segmenter):
    row = video_row(tmp_path)
    row["output"] = "<answer>" + json.dumps({**ANSWER, "time": 30}) + "</answer>"
    masks_for_row(row, segmenter, str(tmp_path))
    assert segmenter.predictor.calls[1][1] == 3
    row["output"] = "<answer>" + json.dumps({**ANSWER, "time": float("inf")}) + "</answer>"  # json writes Infinity
    with pytest.raises(RowLeftOut, match="error: prompted time inf has no frame"):
        masks_for_row(row, segmenter, str(tmp_path))


def test_video_without_prompts_gets_no_masks_and_scores_zero(tmp_path, segmenter):
    row = {**video_row(tmp_path), "output": "<answer>{}</answer>"}
    row["pred_masks"] = masks_for_row(row, segmenter, str(tmp_path))
    assert row["pred_masks"] == {}
    assert score_benchmark(BenchmarkOutput("vos", [row])).results[0]["reward"] == {"J": 0.0, "F": 0.0, "J&F": 0.0}


@pytest.mark.parametrize(
    ("frames_on_disk", "frame_size", "message"),
    [(5, SIZE, "holds 5 frames, the row lists 4"), (4, 32, "frames are 32x32, the row's resolution 20x20")],
)
def test_a_frame_folder_that_does_not_match_the_row_fails_loudly(tmp_path, segmenter, frames_on_disk, frame_size, message):
    with pytest.raises(FrameMismatchError, match=message):
        masks_for_row(video_row(tmp_path, frames_on_disk, frame_size), segmenter, str(tmp_path))


def test_image_is_a_one_frame_video_resized_to_the_row_resolution(tmp_path, segmenter):
    Image.new("RGB", (40, 40)).save(tmp_path / "picture.png")
    row = {"problem_type": "segmentation", "data_type": "image", "path": "picture.png", "solution": "{}",
           "resolution": {"width": SIZE, "height": SIZE}, "output": "<answer>" + json.dumps(ANSWER) + "</answer>",
           "segmentation_output": {"segmentation_rle": rle(square_mask())}}
    row["pred_masks"] = masks_for_row(row, segmenter, str(tmp_path))
    assert segmenter.predictor.calls[0] == ("init_state", 1)
    assert score_benchmark(BenchmarkOutput("img", [row])).results[0]["reward"] == {"IoU": 1.0, "inter": 36, "union": 36}
    no_prompt = {**row, "output": "<answer>{}</answer>"}
    no_prompt["pred_masks"] = masks_for_row(no_prompt, segmenter, str(tmp_path))
    assert no_prompt["pred_masks"] is None
    assert score_benchmark(BenchmarkOutput("img", [no_prompt])).results[0]["status"] == "no-prompts"


def test_an_image_that_cannot_be_opened_is_left_out_and_counted(tmp_path, segmenter):
    row = {"problem_type": "segmentation", "data_type": "image", "path": "missing.png", "solution": "{}",
           "resolution": {"width": SIZE, "height": SIZE}, "output": "<answer>" + json.dumps(ANSWER) + "</answer>",
           "segmentation_output": {"segmentation_rle": rle(square_mask())}}
    with pytest.raises(RowLeftOut, match="image-open-fail"):
        masks_for_row(row, segmenter, str(tmp_path))
    with pytest.raises(RowLeftOut, match="image-open-fail"):  # opened before the prompts are read, as the reference
        masks_for_row({**row, "output": "<answer>{}</answer>"}, segmenter, str(tmp_path))
    scored = score_benchmark(BenchmarkOutput("img", [{**row, "status": "image-open-fail: gone", "reward": None}]))
    assert scored.meta["segmentation"]["left_out"] == {"image-open-fail": 1} and "image/gIoU" not in scored.metrics


def write_clip(path, frames: int, fps: int = 2, size: int = SIZE):
    """An MP4 of ``frames`` frames at ``fps``, written with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            image = np.full((size, size, 3), 40 * index, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def test_frames_are_extracted_by_index_at_the_row_resolution(tmp_path, segmenter):
    write_clip(tmp_path / "clip.mp4", frames=4, size=32)
    row = {**video_row(tmp_path, frames_on_disk=0)}
    row["pred_masks"] = masks_for_row(row, segmenter, str(tmp_path))
    names = sorted(path.name for path in (tmp_path / "clip").iterdir())
    assert names == ["000000.jpg", "000001.jpg", "000002.jpg", "000003.jpg"]
    assert Image.open(tmp_path / "clip" / "000003.jpg").size == (SIZE, SIZE)  # scaled to the row's resolution
    assert sorted(row["pred_masks"]) == ["0", "1", "2", "3"]


def test_a_video_whose_frames_cannot_be_extracted_is_left_out(tmp_path, segmenter):
    row = video_row(tmp_path, frames_on_disk=0)
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    with pytest.raises(RowLeftOut) as raised:
        masks_for_row(row, segmenter, str(tmp_path))
    assert raised.value.status == "no-jpg-in-frame-dir"
    assert segmenter.predictor.calls == []


def test_frames_past_the_end_of_the_video_are_left_without_masks(tmp_path, segmenter):
    # the row lists 4 frames at 2 fps, the video has 2 (1 s): frames 2 and 3 cannot be extracted
    write_clip(tmp_path / "clip.mp4", frames=2)
    row = video_row(tmp_path, frames_on_disk=0)
    row["output"] = "<answer>" + json.dumps({**ANSWER, "time": 0.5}) + "</answer>"
    row["pred_masks"] = masks_for_row(row, segmenter, str(tmp_path))
    assert sorted(row["pred_masks"]) == ["0", "1"]
    assert score_benchmark(BenchmarkOutput("vos", [row])).results[0]["reward"]["J"] == 0.5  # f2 has no mask
    late = video_row(tmp_path, frames_on_disk=0)
    late["output"] = "<answer>" + json.dumps({**ANSWER, "time": 1.5}) + "</answer>"
    with pytest.raises(RowLeftOut, match="error: prompted frame 3 is beyond the 2 frames extracted"):
        masks_for_row(late, segmenter, str(tmp_path))
