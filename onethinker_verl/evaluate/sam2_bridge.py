"""Optional: turn predicted segmentation prompts into masks with SAM2 and store them as ``pred_masks``.

    python -m onethinker_verl.evaluate.sam2_bridge --predictions P.jsonl --output P_masks.jsonl \\
        --checkpoint sam2.1_hiera_large.pt --config configs/sam2.1/sam2.1_hiera_l.yaml --media-root DIR

For each ``segmentation`` line the answer's JSON ``boxes`` ([x1, y1, x2, y2]), ``positive_points``
and ``negative_points`` (and, for video, ``time`` in seconds) prompt SAM2. The media is the line's
``path`` (or first ``images`` / ``videos`` entry) under ``--media-root``: an image file, or for video
a folder of JPEG frames sampled at ``--fps`` frames per second. Image masks are written as one COCO
RLE; video masks are propagated from the prompted frame (index ``round(time × fps)``) forwards and
backwards and written as a mapping frame → RLE, keyed like the line's ``gt_masks`` when it has one
key per frame (in its order), else by frame index ``"0"``, ``"1"``, .... Coordinates are 0–1000
normalised (Qwen3-VL) by default; ``--coords pixels`` for absolute pixels (Qwen2.5-VL).

Other lines, unreadable lines and answers without usable prompts are copied unchanged, so the
evaluator later counts them as unparsed. The mask metrics never need this module; without the
``sam2`` package it exits with code 3 and a message saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from onethinker_verl.evaluate.metrics import extract_answer, numeric_list, parse_json_dict

logger = logging.getLogger("onethinker_verl.evaluate.sam2_bridge")

EXIT_SAM2_MISSING = 3
NORMALIZED_SCALE = 1000.0


def sam2_available() -> bool:
    """True when both ``sam2`` and ``torch`` can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("sam2", "torch"))


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) boolean mask → COCO RLE with a str ``counts`` (JSON-serialisable)."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def read_prompts(response: str, video: bool) -> dict | None:
    """Box (4,), points (6, 2), labels (6,) (1 positive, 0 negative) and, for video, time in seconds.

    None when the answer lacks any of them; coordinates are returned as written in the answer.
    """
    answer = parse_json_dict(extract_answer(response))
    if answer is None:
        return None
    box = numeric_list(answer.get("boxes"), 4)
    positives = answer.get("positive_points")
    negatives = answer.get("negative_points")
    if box is None or not isinstance(positives, list) or not isinstance(negatives, list):
        return None
    points = [numeric_list(point, 2) for point in positives + negatives]
    if len(positives) != 3 or len(negatives) != 3 or any(point is None for point in points):
        return None
    prompts = {
        "box": np.array(box, dtype=np.float32),
        "points": np.array(points, dtype=np.float32),
        "labels": np.array([1] * 3 + [0] * 3, dtype=np.int32),
    }
    if video:
        time = answer.get("time")
        if isinstance(time, bool) or not isinstance(time, (int, float)):
            return None
        prompts["time"] = float(time)
    return prompts


def _to_pixels(prompts: dict, width: int, height: int, coords: str) -> dict:
    if coords == "pixels":
        return prompts
    scale = np.array([width, height], dtype=np.float32) / NORMALIZED_SCALE
    return {**prompts, "box": prompts["box"] * np.tile(scale, 2), "points": prompts["points"] * scale}


def _media_path(row: dict, media_root: Path) -> Path | None:
    for key in ("path", "images", "videos"):
        value = row.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str):
            return media_root / value
    return None


class Sam2Segmenter:
    """SAM2 image and video predictors built once from one checkpoint."""

    def __init__(self, config: str, checkpoint: str, device: str):
        from sam2.build_sam import build_sam2, build_sam2_video_predictor
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.image_predictor = SAM2ImagePredictor(build_sam2(config, checkpoint, device=device))
        self.video_predictor = build_sam2_video_predictor(config, checkpoint, device=device)

    def segment_image(self, image_path: Path, prompts: dict, coords: str) -> np.ndarray:
        """(H, W) boolean mask of the prompted object."""
        from PIL import Image

        image = np.array(Image.open(image_path).convert("RGB"))
        pixels = _to_pixels(prompts, image.shape[1], image.shape[0], coords)
        self.image_predictor.set_image(image)
        masks, _, _ = self.image_predictor.predict(
            point_coords=pixels["points"], point_labels=pixels["labels"], box=pixels["box"], multimask_output=False
        )
        return masks[0] > 0

    def segment_video(self, frames_dir: Path, prompts: dict, coords: str, fps: float) -> list[np.ndarray]:
        """One (H, W) boolean mask per frame of the folder, propagated from the prompted frame."""
        import torch

        with torch.inference_mode():
            state = self.video_predictor.init_state(video_path=str(frames_dir))
            frame_count = state["num_frames"]
            pixels = _to_pixels(prompts, state["video_width"], state["video_height"], coords)
            prompt_frame = int(min(max(round(prompts["time"] * fps), 0), frame_count - 1))
            self.video_predictor.add_new_points_or_box(
                inference_state=state,
                frame_idx=prompt_frame,
                obj_id=1,
                points=pixels["points"],
                labels=pixels["labels"],
                box=pixels["box"],
            )
            masks = [np.zeros((state["video_height"], state["video_width"]), dtype=bool)] * frame_count
            for reverse in (False, True):
                for frame_index, _, logits in self.video_predictor.propagate_in_video(state, reverse=reverse):
                    masks[frame_index] = (logits[0, 0] > 0).cpu().numpy()
            self.video_predictor.reset_state(state)
        return masks


def add_masks(row: dict, segmenter: Sam2Segmenter, media_root: Path, coords: str, fps: float) -> dict:
    """The row with ``pred_masks`` filled in, or unchanged when it has no usable prompts or media."""
    video = str(row.get("data_type", "")).strip().lower() == "video"
    prompts = read_prompts(row.get("response") or "", video)
    media = _media_path(row, media_root)
    if prompts is None or media is None:
        return row
    if not video:
        return {**row, "pred_masks": encode_mask(segmenter.segment_image(media, prompts, coords))}
    frames = segmenter.segment_video(media, prompts, coords, fps)
    gt_keys = list(row["gt_masks"]) if isinstance(row.get("gt_masks"), dict) and "counts" not in row["gt_masks"] else []
    keys = gt_keys if len(gt_keys) == len(frames) else [str(index) for index in range(len(frames))]
    return {**row, "pred_masks": {key: encode_mask(mask) for key, mask in zip(keys, frames)}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m onethinker_verl.evaluate.sam2_bridge", description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", required=True, type=Path, help="JSONL predictions file to read")
    parser.add_argument("--output", required=True, type=Path, help="JSONL file to write, with pred_masks added")
    parser.add_argument("--checkpoint", required=True, help="SAM2 checkpoint (.pt)")
    parser.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_l.yaml", help="SAM2 model config name")
    parser.add_argument("--media-root", type=Path, default=Path("."), help="folder the media paths are relative to")
    parser.add_argument("--coords", choices=("normalized1000", "pixels"), default="normalized1000")
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second of the video frame folders")
    parser.add_argument("--device", default="cuda")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not sam2_available():
        logger.error(
            "SAM2 is not installed (needs the `sam2` and `torch` packages); no masks written. "
            "Mask metrics do not need it when pred_masks are already in the predictions file."
        )
        return EXIT_SAM2_MISSING
    segmenter = Sam2Segmenter(args.config, args.checkpoint, args.device)
    segmented = 0
    with open(args.predictions, encoding="utf-8") as source, open(args.output, "w", encoding="utf-8") as sink:
        for line_number, text in enumerate(source, start=1):
            try:
                row = json.loads(text)
            except ValueError:
                row = None
            if isinstance(row, dict) and str(row.get("problem_type", "")).strip().lower() == "segmentation":
                try:
                    updated = add_masks(row, segmenter, args.media_root, args.coords, args.fps)
                except Exception:  # one unreadable media file must not stop the whole conversion
                    logger.exception("line %d: SAM2 failed; left without pred_masks", line_number)
                    updated = row
                segmented += updated is not row  # add_masks returns the row itself when it adds nothing
                text = json.dumps(updated) + "\n"
            sink.write(text if text.endswith("\n") else text + "\n")
    logger.info("wrote %s (%d segmentation lines given masks)", args.output, segmented)
    return 0


if __name__ == "__main__":
    sys.exit(main())
