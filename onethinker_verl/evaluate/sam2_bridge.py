"""Predicted segmentation prompts -> masks with SAM2, as the reference's ``seg_post_sam2.py`` makes them.

    python -m onethinker_verl.evaluate sam2 --outputs OUT/eval_seg_mevis_eval.json \\
        --checkpoint sam2.1_hiera_large.pt --config configs/sam2.1/sam2.1_hiera_l.yaml --media-root DIR

For every segmentation row of a benchmark output file (reference format, see :mod:`.reference.outputs`) this reads
the row's own ``resolution`` (W, H), ``fps`` and ``segmentation_output.frames`` and prompts SAM2's video
predictor the way the reference does:

- prompts come from the answer in 0-1000 units, scaled to W x H, rounded and clipped
  (:func:`~onethinker_verl.evaluate.reference.masks.read_prompts`): the box alone first, then (when
  there are points) the points with their labels and the box;
- an image is a one-frame video, resized to W x H when its size differs;
- a video is the folder of JPEG frames next to it (``video.mp4`` -> ``video/000000.jpg``, ...), frame k
  taken at k / fps seconds and scaled to W x H; missing frames are extracted with ffmpeg. The prompt goes
  on frame ``clip(round(time × fps), 0, len(frames) - 1)``; masks are propagated forwards and backwards
  from there.
The masks are written into the row as ``pred_masks`` (image: one COCO RLE; video: frame index -> RLE) and
the file is re-scored (:func:`~onethinker_verl.evaluate.reference.outputs.score_benchmark`). Unlike the reference,
a frame folder whose frame count or frame size does not match the row's ``frames`` / ``resolution`` is a
loud error naming the row (the reference would silently score the mismatched frames as empty). Rows the
reference leaves out (no prompts on an image, an image that cannot be opened, bad fps, no frame list,
unreadable prompts) get no masks and are left out the same way when scored. Without the ``sam2`` package the command exits with code 3.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from onethinker_verl.data.media import resolve_media_path
from onethinker_verl.evaluate.reference.outputs import read_outputs, score_benchmark, write_json_atomic
from onethinker_verl.evaluate.reference.masks import Prompts, ReferenceRowError, answer_text, ground_truth_of, read_prompts

logger = logging.getLogger(__name__)

EXIT_SAM2_MISSING = 3
FRAME_SUFFIX = ".jpg"


class FrameMismatchError(RuntimeError):
    """A video's frame folder does not match the row's frame list or resolution."""


class ImageUnreadable(RuntimeError):
    """A segmentation row's image cannot be opened; the row is left out (status ``image-open-fail``)."""


def sam2_available() -> bool:
    """True when both ``sam2`` and ``torch`` can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("sam2", "torch"))


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) boolean mask -> COCO RLE with a str ``counts`` (JSON-serialisable)."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def frame_folder(video_path: str) -> Path:
    """Where the reference keeps a video's frames: the video's path without its extension."""
    return Path(video_path).with_suffix("")


def ensure_frames(video_path: str, fps: float, count: int, width: int, height: int) -> Path:
    """The frame folder of ``video_path`` with ``count`` JPEGs ``000000.jpg`` ..., frame k at k / fps
    seconds, each ``width`` x ``height``; missing frames are extracted with ffmpeg. Raises
    :class:`FrameMismatchError` when the folder holds another number of frames or another size."""
    from PIL import Image

    folder = frame_folder(video_path)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        target = folder / f"{index:06d}{FRAME_SUFFIX}"
        if not target.is_file():
            if shutil.which("ffmpeg") is None:
                raise FrameMismatchError(f"{target} is missing and ffmpeg is not installed to extract it")
            command = ["ffmpeg", "-loglevel", "error", "-y", "-ss", str(index / fps), "-i", video_path,
                       "-frames:v", "1", "-q:v", "2", "-vf", f"scale={width}:{height}", str(target)]
            finished = subprocess.run(command, capture_output=True, text=True)
            if finished.returncode != 0 or not target.is_file():
                raise FrameMismatchError(f"ffmpeg could not extract frame {index} of {video_path}: {finished.stderr.strip()}")
    present = sorted(path.name for path in folder.glob(f"*{FRAME_SUFFIX}"))
    if len(present) != count:
        raise FrameMismatchError(f"{folder} holds {len(present)} frames, the row lists {count} (fps {fps})")
    with Image.open(folder / present[0]) as first:
        if first.size != (width, height):
            raise FrameMismatchError(f"{folder}: frames are {first.size[0]}x{first.size[1]}, the row's resolution {width}x{height}")
    return folder


class Sam2VideoSegmenter:
    """SAM2's video predictor, built once; segments one prompted object per call."""

    def __init__(self, config: str, checkpoint: str, device: str):
        from sam2.build_sam import build_sam2_video_predictor

        self.predictor = build_sam2_video_predictor(config, checkpoint, device=device)

    def _prompt(self, state, frame_index: int, prompts: Prompts):
        logits = None
        if prompts.box is not None:
            _, _, logits = self.predictor.add_new_points_or_box(state, frame_idx=frame_index, obj_id=1, box=prompts.box)
        if prompts.points is not None:
            _, _, logits = self.predictor.add_new_points_or_box(
                state, frame_idx=frame_index, obj_id=1, points=prompts.points, labels=prompts.labels, box=prompts.box
            )
        return logits

    def segment_image(self, image_path: str, prompts: Prompts, width: int, height: int) -> np.ndarray | None:
        """(H, W) mask of the prompted object in one image, or None without prompts."""
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="sam2_image_") as folder:
            try:
                with Image.open(image_path) as opened:
                    image = opened.convert("RGB")
            except OSError as exc:
                raise ImageUnreadable(f"image-open-fail: {exc}") from None
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            image.save(Path(folder) / f"{0:06d}{FRAME_SUFFIX}")
            state = self.predictor.init_state(video_path=folder)
            try:
                logits = self._prompt(state, 0, prompts)
                return None if logits is None else (logits[0] > 0).cpu().numpy().squeeze()
            finally:
                self.predictor.reset_state(state)

    def segment_video(self, folder: Path, prompts: Prompts, frame_index: int) -> dict[int, np.ndarray]:
        """Frame index -> (H, W) mask, propagated forwards then backwards from ``frame_index``."""
        state = self.predictor.init_state(video_path=str(folder))
        masks: dict[int, np.ndarray] = {}
        try:
            if self._prompt(state, frame_index, prompts) is None:
                return masks  # no prompt: the reference's propagation fails and no frame gets a mask
            for reverse in (False, True):
                for index, _, logits in self.predictor.propagate_in_video(state, start_frame_idx=frame_index, reverse=reverse):
                    masks[int(index)] = (logits[0] > 0).cpu().numpy().squeeze()
        finally:
            self.predictor.reset_state(state)
        return masks


def masks_for_row(row: dict, segmenter: Sam2VideoSegmenter, media_root: str | None) -> dict | None:
    """``pred_masks`` for one segmentation row, or None when the reference would leave the row out."""
    data_type = row.get("data_type")
    try:
        truth = ground_truth_of(row)
        prompts = read_prompts(answer_text(row), truth.width, truth.height)
    except ReferenceRowError:
        return None  # left out with its reason when scored
    media = resolve_media_path(str(row.get("path") or ""), media_root)
    if data_type == "image":
        if prompts.empty:
            return None
        mask = segmenter.segment_image(media, prompts, truth.width, truth.height)
        return None if mask is None else encode_mask(mask)
    if truth.fps <= 0 or not truth.frames:
        return None
    folder = ensure_frames(media, truth.fps, len(truth.frames), truth.width, truth.height)
    frame_index = max(0, min(int(round(prompts.time_s * truth.fps)), len(truth.frames) - 1))
    masks = segmenter.segment_video(folder, prompts, frame_index)
    return {str(index): encode_mask(mask) for index, mask in sorted(masks.items())}


def run_sam2(outputs: list[str | os.PathLike], checkpoint: str, config: str, media_root: str | None, device: str) -> list[Path]:
    """Add ``pred_masks`` to the segmentation rows of each output file and re-score it in place."""
    import torch

    segmenter = Sam2VideoSegmenter(config, checkpoint, device)
    written = []
    for path in outputs:
        (benchmark,) = read_outputs(path)
        for index, row in enumerate(benchmark.results):
            if str(row.get("problem_type", "")).strip().lower() != "segmentation" or "pred_masks" in row:
                continue
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast("cpu", enabled=False)
            with torch.inference_mode(), autocast:
                try:
                    masks = masks_for_row(row, segmenter, media_root)
                except FrameMismatchError as exc:
                    raise FrameMismatchError(f"{path}, row {index + 1} (problem_id {row.get('problem_id')!r}): {exc}") from None
                except ImageUnreadable as exc:
                    # left out of the mask metrics and counted, as the reference's SAM2 step does
                    logger.warning("%s, row %d: %s", path, index + 1, exc)
                    row["status"], row["reward"] = str(exc), None
                    continue
            # None: no mask, so the row is scored (or left out) as the reference treats it.
            row["pred_masks"] = masks
        scored = score_benchmark(benchmark)
        write_json_atomic(path, scored.to_json())
        written.append(Path(path))
        logger.info("%s: masks added; %s", path, {k: round(v, 4) for k, v in scored.metrics.items() if "/" in k and k.split("/")[0] in ("video", "image")})
    return written
