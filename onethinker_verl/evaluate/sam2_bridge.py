"""Predicted segmentation prompts -> masks with SAM2, as the reference's ``seg_post_sam2.py`` makes them.

    python -m onethinker_verl.evaluate sam2 --outputs OUT/eval_seg_mevis_eval.json \\
        --checkpoint sam2.1_hiera_large.pt --config configs/sam2.1/sam2.1_hiera_l.yaml --media-root DIR

Wraps ``sam2.build_sam.build_sam2_video_predictor`` and the video predictor's ``init_state`` /
``add_new_points_or_box`` / ``propagate_in_video`` (sam2 1.1.0). Before any row, :func:`load_segmenter`
checks the set-up and refuses it in one line: a config name that is neither one of the sam2 package's
configs nor a YAML file, a checkpoint that is missing, unreadable or does not match the config (missing,
unexpected or differently shaped weights), a device that is not there.

For every segmentation row of a benchmark output file (reference format, see :mod:`.reference.outputs`) this
reads the row's own ``resolution`` (W, H), ``fps`` and ``segmentation_output.frames`` and prompts SAM2's video
predictor the way the reference does:

- prompts come from the answer in 0-1000 units, scaled to W x H, rounded and clipped
  (:func:`~onethinker_verl.evaluate.reference.masks.read_prompts`): the box alone first, then (when
  there are points) the points with their labels and the box;
- an image is a one-frame video (``000000.jpg`` in a temporary folder), resized to W x H when its size differs;
- a video is the folder of JPEG frames next to it (``video.mp4`` -> ``video/000000.jpg``, ...): frame k is
  taken at k / fps seconds and scaled to W x H by the reference's ffmpeg command (the ffmpeg binary that
  ``imageio-ffmpeg`` ships, or ``IMAGEIO_FFMPEG_EXE``), extracted when missing. SAM2 orders a folder's JPEGs by
  the integer value of their names and numbers them by position, so the names must be the frame indices.
  The prompt goes on frame ``clip(round(time × fps), 0, len(frames) - 1)``; masks are propagated forwards
  from there to the last frame, then backwards to frame 0.

The masks are written into the row as ``pred_masks`` (image: one COCO RLE of H x W; video: frame index -> RLE)
and the file is re-scored (:func:`~onethinker_verl.evaluate.reference.outputs.score_benchmark`). Rows the
reference leaves out are left out the same way, with its status, and counted: no prompts on an image
(``no-prompts``), an image that cannot be opened (``image-open-fail: ...``), a video none of whose frames can
be extracted (``no-jpg-in-frame-dir``; the row is named in a warning, the file goes on), bad fps, no frame
list, unreadable prompts. A video some of whose frames cannot be extracted is segmented on the frames there
are, as the reference does (the others score J = F = 0); when its prompted frame is among the missing ones
the row is left out with status ``error: ...``. Unlike the reference, an existing frame folder with more
frames than the row lists, or frames of another size, is an error naming the row (the reference would score
the mismatched frames silently). On CPU SAM2 runs in float32 (the reference autocasts to bfloat16 on CUDA
only). ``--device auto`` (the default) picks the device as the reference does: CUDA when available, else MPS,
else the CPU. Without the ``sam2`` package the command exits with code 3.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from onethinker_verl.data.media import resolve_media_path
from onethinker_verl.evaluate.reference.masks import Prompts, ReferenceRowError, answer_text, ground_truth_of, read_prompts
from onethinker_verl.evaluate.reference.outputs import read_outputs, score_benchmark, write_json_atomic

logger = logging.getLogger(__name__)

EXIT_SAM2_MISSING = 3
FRAME_SUFFIX = ".jpg"
# The reference's statuses for rows its SAM2 step leaves out.
STATUS_NO_FRAMES = "no-jpg-in-frame-dir"
STATUS_IMAGE_OPEN_FAIL = "image-open-fail"
# The Python package whose configs SAM2's builders compose (``sam2/configs/...``).
PACKAGE_CONFIG_MODULE = "sam2"
# --device default: the reference's choice (CUDA when available, else MPS, else the CPU).
AUTO_DEVICE = "auto"


class Sam2SetupError(ValueError):
    """The SAM2 config, checkpoint or device cannot be used; raised before any row is touched."""


class FrameMismatchError(ValueError):
    """An existing frame folder does not match the row's frame list or resolution."""


class RowLeftOut(RuntimeError):
    """The reference's SAM2 step leaves this row out; ``status`` is the reference's status for it."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def sam2_available() -> bool:
    """True when both ``sam2`` and ``torch`` can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("sam2", "torch"))


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) boolean mask -> COCO RLE with a str ``counts`` (JSON-serialisable)."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


# ------------------------------------------------------------------------------------------ set-up


@contextlib.contextmanager
def sam2_hydra(config_dir: str | None = None):
    """Hydra initialised for SAM2's configs (the sam2 package's, or the folder ``config_dir``) inside the
    block, and the process's Hydra state (global instance, version base, resolvers) as it was afterwards.

    ``import sam2`` initialises Hydra's global instance for its package configs and leaves it so, after
    which ``hydra.initialize`` anywhere else in the process (verl's trainer, a test) fails with "GlobalHydra is
    already initialized"; SAM2 models are built inside this block instead.
    """
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    saved = Singleton.get_state()
    try:
        GlobalHydra.instance().clear()
        import sam2  # noqa: F401  (its first import initialises Hydra; replaced just below)

        GlobalHydra.instance().clear()
        if config_dir is None:
            initialize_config_module(PACKAGE_CONFIG_MODULE, version_base="1.2")
        else:
            initialize_config_dir(config_dir, version_base="1.2")
        yield
    finally:
        Singleton.set_state(saved)


def package_configs() -> list[str]:
    """The model config names the installed sam2 package ships (``configs/sam2.1/sam2.1_hiera_t.yaml``, ...)."""
    root = Path(importlib.util.find_spec("sam2").origin).parent
    return sorted(str(path.relative_to(root)) for path in (root / "configs").rglob("*.yaml") if "training" not in path.parts[-2])


@dataclass(frozen=True)
class ConfigLocation:
    """Where Hydra finds a SAM2 config: a name in the sam2 package (``config_dir`` None) or a file's folder."""

    name: str
    config_dir: str | None


def locate_config(config: str) -> ConfigLocation:
    """A SAM2 config given as a package config name or as a path to a YAML file; raises
    :class:`Sam2SetupError` naming the packaged configs when it is neither."""
    known = package_configs()
    if config in known:
        return ConfigLocation(config, None)
    path = Path(config).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        packaged = next((name for name in known if path.resolve().as_posix().endswith("/sam2/" + name)), None)
        return ConfigLocation(packaged, None) if packaged else ConfigLocation(path.stem, str(path.resolve().parent))
    raise Sam2SetupError(f"SAM2 config {config!r} does not exist: it is neither a config of the installed sam2 package "
                         f"({', '.join(name for name in known if '2.1' in name)}, ...) nor a YAML file")


def resolve_device(device: str) -> str:
    """``auto`` -> the device the reference picks: CUDA when available, else MPS, else the CPU."""
    import torch

    if device != AUTO_DEVICE:
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def check_device(device: str) -> None:
    """Refuse a device string torch does not know, or a CUDA / MPS device that is not there."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise Sam2SetupError(f"SAM2 device {device!r} is not a torch device: {exc}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise Sam2SetupError(f"SAM2 device {device!r}: CUDA is not available on this machine (use --device cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise Sam2SetupError(f"SAM2 device {device!r}: only {torch.cuda.device_count()} CUDA devices are visible")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise Sam2SetupError(f"SAM2 device {device!r}: MPS is not available on this machine (use --device cpu)")
    elif parsed.type != "cpu":
        raise Sam2SetupError(f"SAM2 device {device!r}: use auto, cuda[:N], mps or cpu")


def read_checkpoint(checkpoint: str) -> dict:
    """The ``model`` state dict of a SAM2 checkpoint (the layout ``build_sam._load_checkpoint`` reads)."""
    import torch

    if not Path(checkpoint).is_file():
        raise Sam2SetupError(f"SAM2 checkpoint {checkpoint} does not exist")
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several unrelated types for a file that is not a checkpoint
        raise Sam2SetupError(f"SAM2 checkpoint {checkpoint} cannot be read by torch.load: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("model"), dict):
        raise Sam2SetupError(f"SAM2 checkpoint {checkpoint} holds no 'model' state dict (SAM2's checkpoint layout)")
    return loaded["model"]


def check_weights_match(model, state_dict: dict, checkpoint: str, config: str) -> None:
    """Refuse a checkpoint whose weights are not exactly the model's (names and shapes), in one line."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}" for key in expected
                if key in state_dict and tuple(state_dict[key].shape) != tuple(expected[key].shape)]
    problems = [f"{len(found)} {what} (e.g. {found[0]})" for what, found in
                (("weights missing", missing), ("unexpected weights", unexpected), ("weights of another shape, checkpoint vs config", reshaped))
                if found]
    if problems:
        raise Sam2SetupError(f"SAM2 checkpoint {checkpoint} does not match config {config}: {'; '.join(problems)}")


@contextlib.contextmanager
def without_extension_warning():
    """sam2 without its CUDA extension warns on import and on every frame; :func:`build_predictor` says it once."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*cannot import name '_C'", category=UserWarning)
        yield


def build_predictor(config: str, checkpoint: str, device: str):
    """SAM2's video predictor from ``config`` with the weights of ``checkpoint`` on ``device``, after checking
    all three (:class:`Sam2SetupError`). The model is built on the CPU, checked and loaded there, then moved."""
    device = resolve_device(device)
    check_device(device)
    location = locate_config(config)
    state_dict = read_checkpoint(checkpoint)
    with sam2_hydra(location.config_dir), without_extension_warning():
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(location.name, ckpt_path=None, device="cpu")
    check_weights_match(predictor, state_dict, checkpoint, config)
    predictor.load_state_dict(state_dict)
    if importlib.util.find_spec("sam2._C") is None:
        logger.info("sam2 has no CUDA extension here: SAM2 skips filling small holes in the masks (a GPU "
                    "install with the extension fills holes up to 8 pixels, as the reference's did)")
    logger.info("SAM2 %s with %s on %s", config, checkpoint, device)
    return predictor.to(device)


def check_sam2_setup(config: str, checkpoint: str, device: str) -> None:
    """The set-up check of :func:`build_predictor` alone (for a run that reaches SAM2 only later): config,
    checkpoint against config, device; raises :class:`Sam2SetupError`."""
    check_device(resolve_device(device))
    build_predictor(config, checkpoint, "cpu")


# ------------------------------------------------------------------------------------------ frames


def frame_folder(video_path: str) -> Path:
    """Where the reference keeps a video's frames: the video's path without its extension."""
    return Path(video_path).with_suffix("")


def frame_path(folder: Path, index: int) -> Path:
    """Frame ``index`` of a frame folder, named by its index as SAM2 orders them (``000012.jpg``)."""
    return folder / f"{index:06d}{FRAME_SUFFIX}"


def extract_frame(video_path: str, time_s: float, target: Path, width: int, height: int) -> str | None:
    """Write the frame at ``time_s`` seconds, scaled to ``width`` x ``height``, to ``target`` with the
    reference's ffmpeg command; returns ffmpeg's complaint when no frame was written, else None."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-ss", f"{max(0.0, float(time_s))}",
               "-i", video_path, "-frames:v", "1", "-q:v", "2", "-vf", f"scale={width}:{height}", str(target)]
    finished = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if finished.returncode != 0 or not target.is_file():
        lines = finished.stderr.strip().splitlines()
        return lines[-1] if lines else f"ffmpeg exit code {finished.returncode}"
    return None


def ensure_frames(video_path: str, fps: float, count: int, width: int, height: int) -> tuple[Path, list[int]]:
    """The frame folder of ``video_path`` and the indices among ``0 .. count - 1`` whose frame could not be
    extracted. Frames missing from the folder are extracted (frame k at k / fps seconds, ``width`` x
    ``height``). Raises :class:`FrameMismatchError` when the folder holds more frames or another size."""
    from PIL import Image

    folder = frame_folder(video_path)
    folder.mkdir(parents=True, exist_ok=True)
    failed, complaint = [], None
    for index in range(count):
        target = frame_path(folder, index)
        if not target.is_file():
            problem = extract_frame(video_path, index / fps, target, width, height)
            if problem is not None:
                failed.append(index)
                complaint = complaint or problem
    if failed:
        logger.warning("%s: %d of %d frames could not be extracted (first: frame %d at %.3f s: %s)",
                       video_path, len(failed), count, failed[0], failed[0] / fps, complaint)
    present = sorted(folder.glob(f"*{FRAME_SUFFIX}"))
    if len(present) > count:
        raise FrameMismatchError(f"{folder} holds {len(present)} frames, the row lists {count} (fps {fps})")
    if present:
        with Image.open(present[0]) as first:
            if first.size != (width, height):
                raise FrameMismatchError(f"{folder}: frames are {first.size[0]}x{first.size[1]}, the row's resolution {width}x{height}")
    return folder, failed


# ------------------------------------------------------------------------------------------ SAM2 calls


class Sam2VideoSegmenter:
    """SAM2's video predictor, built once (:func:`build_predictor`); segments one prompted object per call."""

    def __init__(self, config: str, checkpoint: str, device: str):
        self.device = resolve_device(device)
        self.predictor = build_predictor(config, checkpoint, self.device)

    @contextlib.contextmanager
    def precision(self):
        """The reference's precision: bfloat16 autocast on CUDA, plain float32 elsewhere."""
        import torch

        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if str(self.device).startswith("cuda") else contextlib.nullcontext()
        with autocast, without_extension_warning():
            yield

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
        """(H, W) mask of the prompted object in one image, or None without prompts; raises
        :class:`RowLeftOut` (``image-open-fail: ...``) when the image cannot be opened."""
        from PIL import Image

        try:
            with Image.open(image_path) as opened:
                image = opened.convert("RGB")
        except Exception as exc:  # the reference leaves the row out on any failure to open the image
            raise RowLeftOut(f"{STATUS_IMAGE_OPEN_FAIL}: {exc!r}") from None
        if prompts.empty:
            return None  # SAM2 would give no mask: the reference's no-prompts
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        with tempfile.TemporaryDirectory(prefix="sam2_image_") as folder:
            image.save(frame_path(Path(folder), 0))
            with self.precision():
                state = self.predictor.init_state(video_path=folder)
                try:
                    logits = self._prompt(state, 0, prompts)
                    return None if logits is None else (logits[0, 0] > 0).cpu().numpy()
                finally:
                    self.predictor.reset_state(state)

    def segment_video(self, folder: Path, prompts: Prompts, frame_index: int) -> dict[int, np.ndarray]:
        """Frame index -> (H, W) mask: forwards from ``frame_index`` to the last frame, then backwards to
        frame 0 (the prompted frame is produced by both; the backward pass's mask is kept)."""
        with self.precision():
            state = self.predictor.init_state(video_path=str(folder))
            masks: dict[int, np.ndarray] = {}
            try:
                if self._prompt(state, frame_index, prompts) is None:
                    return masks  # no prompt: the reference's propagation fails and no frame gets a mask
                for reverse in (False, True):
                    for index, _, logits in self.predictor.propagate_in_video(state, start_frame_idx=frame_index, reverse=reverse):
                        masks[int(index)] = (logits[0, 0] > 0).cpu().numpy()
            finally:
                self.predictor.reset_state(state)
        return masks


def masks_for_row(row: dict, segmenter: Sam2VideoSegmenter, media_root: str | None) -> dict | None:
    """``pred_masks`` for one segmentation row, or None when scoring leaves the row out by its own rules
    (no prompts on an image, bad fps, no frame list, unreadable prompts, unknown data type); raises
    :class:`RowLeftOut` for the rows the SAM2 step itself leaves out."""
    data_type = row.get("data_type")
    if data_type not in ("image", "video"):
        return None
    try:
        truth = ground_truth_of(row)
        prompts = read_prompts(answer_text(row), truth.width, truth.height)
    except ReferenceRowError:
        return None  # left out with its reason when scored
    media = resolve_media_path(str(row.get("path") or ""), media_root)
    if data_type == "image":
        # the image is opened before the prompts are looked at: an unreadable one is image-open-fail either way
        mask = segmenter.segment_image(media, prompts, truth.width, truth.height)
        return None if mask is None else encode_mask(mask)
    if truth.fps <= 0 or not truth.frames:
        return None
    folder, failed = ensure_frames(media, truth.fps, len(truth.frames), truth.width, truth.height)
    extracted = len(truth.frames) - len(failed)
    if extracted == 0:
        raise RowLeftOut(STATUS_NO_FRAMES)
    if not math.isfinite(prompts.time_s * truth.fps):
        raise RowLeftOut(f"error: prompted time {prompts.time_s} has no frame")  # the reference's round() raises
    frame_index = max(0, min(int(round(prompts.time_s * truth.fps)), len(truth.frames) - 1))
    if frame_index >= extracted:
        raise RowLeftOut(f"error: prompted frame {frame_index} is beyond the {extracted} frames extracted from {media}")
    masks = segmenter.segment_video(folder, prompts, frame_index)
    return {str(index): encode_mask(mask) for index, mask in sorted(masks.items())}


def run_sam2(outputs: list[str | os.PathLike], checkpoint: str, config: str, media_root: str | None, device: str) -> list[Path]:
    """Add ``pred_masks`` to the segmentation rows of each output file and re-score it in place.

    Rows that already carry ``pred_masks`` are kept; rows left out by an earlier run (a status, no masks)
    are tried again."""
    import torch

    segmenter = Sam2VideoSegmenter(config, checkpoint, device)
    written = []
    for path in outputs:
        (benchmark,) = read_outputs(path)
        left_out: dict[str, int] = {}
        for index, row in enumerate(benchmark.results):
            if str(row.get("problem_type", "")).strip().lower() != "segmentation" or "pred_masks" in row:
                continue
            with torch.inference_mode():
                try:
                    masks = masks_for_row(row, segmenter, media_root)
                except FrameMismatchError as exc:
                    raise FrameMismatchError(f"{path}, row {index + 1} (problem_id {row.get('problem_id')!r}): {exc}") from None
                except RowLeftOut as exc:
                    # left out of the mask metrics and counted, as the reference's SAM2 step does
                    logger.warning("%s, row %d (problem_id %r, %s): left out, %s", path, index + 1, row.get("problem_id"), row.get("path"), exc.status)
                    row["status"], row["reward"] = exc.status, None
                    reason = exc.status.split(":", 1)[0]
                    left_out[reason] = left_out.get(reason, 0) + 1
                    continue
            # None: no mask, so the row is scored (or left out) as the reference treats it.
            row["pred_masks"] = masks
        scored = score_benchmark(benchmark)
        write_json_atomic(path, scored.to_json())
        written.append(Path(path))
        if left_out:
            logger.warning("%s: %d segmentation rows left out by the SAM2 step: %s", path, sum(left_out.values()), left_out)
        logger.info("%s: masks added; %s", path, {k: round(v, 4) for k, v in scored.metrics.items() if k.split("/")[0] in ("video", "image")})
    return written
