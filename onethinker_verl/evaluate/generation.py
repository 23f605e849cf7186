"""Model outputs for benchmark files, by the reference protocol (OneThinker's ``eval_bench.py``).

    python -m onethinker_verl.evaluate generate --model CKPT --inputs eval_charades.json ... --out-dir OUT

Input: benchmark files in the reference's format (a JSON array or JSON Lines of rows with ``problem``,
``solution``, ``problem_type``, ``data_type``, ``path`` and for ``video-image`` rows ``additional_path``,
optional ``options``, ``problem_id``; ``images`` / ``videos`` lists are read too). Output per input file:
``OUT/<file stem><suffix>.json`` in the reference's output format (see :mod:`.reference.outputs`), rewritten
atomically after every batch; a rerun skips the rows already written (after checking that they belong to
this input) and continues.

Protocol defaults (:class:`GenerationSettings`, every one overridable): the training prompt templates
(:mod:`onethinker_verl.data.prompts`), greedy decoding, at most 8,192 new tokens, ``max_model_len``
81,920, seed 0, batches of 64; videos at 2 fps, at most 128 frames, 256×32×32 pixels per frame; images
at most 1024×32×32 pixels; a ``video-image`` row gets its video, then its extra image.

Backends: ``vllm`` (GPU; tensor parallel over the visible GPUs; ``--data-parallel N`` runs N engines on
N disjoint GPU groups, each over a share of the benchmark files) and ``hf`` (Hugging Face transformers,
any device; slow, used by the tests). A row whose media cannot be read, or whose generation fails on its
own, is written with ``output`` null and ``generation_error`` naming the reason, scored 0 and counted in
``meta.generation_failed_rows``; the run goes on, and a rerun tries those rows again. (The reference writes
``<answer>ERROR</answer>`` for every row of a batch whose generation raised, and stops on unreadable media.)
:func:`summarise_outputs` counts the failed rows of finished files; :meth:`GenerationSummary.check` turns
"every row failed" or "more than ``--max-failed-fraction`` failed" into :class:`GenerationFailed`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from onethinker_verl.benchmark_scoring.reference import MetricAccumulator, extract_prediction, score_row
from onethinker_verl.data.corpus import RowRejected, parse_row
from onethinker_verl.data.media import resolve_media_path
from onethinker_verl.data.prompts import PromptTemplates, build_prompt_text, load_templates
from onethinker_verl.data.records import iter_records
from onethinker_verl.evaluate.reference.outputs import GENERATION_ERROR, BenchmarkOutput, benchmark_name_of, score_benchmark, write_json_atomic

logger = logging.getLogger(__name__)

BACKENDS = ("vllm", "hf")
_PLACEHOLDER = re.compile(r"(<image>|<video>)")


@dataclass(frozen=True)
class GenerationSettings:
    """Generation settings; the defaults are the reference protocol's (eval_bench.py / eval_bench_all.sh).

    Pixel budgets are pixels per image / per video frame; fps is frames sampled per second of video.
    """

    backend: str = "vllm"
    max_new_tokens: int = 8192
    temperature: float = 0.0  # greedy
    top_k: int = -1
    seed: int = 0
    batch_size: int = 64
    max_model_len: int = 81920
    video_fps: float = 2.0
    video_max_frames: int = 128
    video_max_pixels: int = 256 * 32 * 32
    image_max_pixels: int = 1024 * 32 * 32
    gpu_memory_utilization: float = 0.8  # vLLM
    tensor_parallel_size: int = 0  # vLLM; 0: all visible GPUs (of this engine's group)
    data_parallel: int = 1  # vLLM: engines on disjoint GPU groups
    media_root: str | None = None
    prompt_templates: str | None = None
    suffix: str = "_eval"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("max_new_tokens", "batch_size", "max_model_len", "video_max_frames", "video_max_pixels",
                     "image_max_pixels", "data_parallel"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.video_fps <= 0:
            raise ValueError(f"video_fps must be positive, got {self.video_fps}")


class MediaError(RuntimeError):
    """A row's image or video cannot be read or decoded."""


class BackendUnavailable(RuntimeError):
    """The chosen generation backend cannot run here (its package is missing), or the model cannot be loaded."""


class GenerationFailed(RuntimeError):
    """Generation produced nothing useful: every row failed (exit code 1), or more rows than allowed
    (:class:`TooManyFailedRows`); the message is one line for the user."""

    exit_code = 1


class TooManyFailedRows(GenerationFailed):
    """Some rows failed generation, more than ``--max-failed-fraction`` allows."""

    exit_code = 4


# Prefix of the reason recorded for a row whose media file does not exist (the hint names --media-root).
MISSING_MEDIA = "file not found: "
# Default of ``--max-failed-fraction``: up to 1 % of rows may fail (e.g. a few corrupt videos among 10k rows).
DEFAULT_MAX_FAILED_FRACTION = 0.01


# ------------------------------------------------------------------------------------------ prompts


def read_benchmark_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a benchmark file (JSON array or JSON Lines); a malformed row is an error naming it."""
    rows = []
    for record in iter_records(path):
        if record.error is not None:
            raise ValueError(f"{path}, row {record.position}: malformed JSON: {record.error}")
        if not isinstance(record.value, dict):
            raise ValueError(f"{path}, row {record.position}: not a JSON object")
        rows.append(record.value)
    return rows


def build_messages(row: dict, settings: GenerationSettings, templates: PromptTemplates) -> list[dict]:
    """The single user turn of one benchmark row: media items (with their sampling settings) and text.

    Raises :class:`~onethinker_verl.data.corpus.RowRejected` for a row the prompt cannot be built from
    and :class:`MediaError` when a media file does not exist.
    """
    parsed = parse_row(row)
    text = build_prompt_text(
        parsed.question, parsed.problem_type, parsed.data_type, parsed.options, len(parsed.images), len(parsed.videos), templates
    )
    images = iter(_media_item("image", path, settings) for path in parsed.images)
    videos = iter(_media_item("video", path, settings) for path in parsed.videos)
    content = []
    for piece in _PLACEHOLDER.split(text):
        if piece == "<image>":
            content.append(next(images))
        elif piece == "<video>":
            content.append(next(videos))
        elif piece:
            content.append({"type": "text", "text": piece})
    return [{"role": "user", "content": content}]


def _media_item(modality: str, path: str, settings: GenerationSettings) -> dict:
    resolved = resolve_media_path(path, settings.media_root)
    if "://" not in resolved and not os.path.isfile(resolved):
        raise MediaError(f"{modality} {MISSING_MEDIA}{resolved}")
    if modality == "image":
        return {"type": "image", "image": resolved, "max_pixels": settings.image_max_pixels}
    return {"type": "video", "video": resolved, "max_pixels": settings.video_max_pixels,
            "max_frames": settings.video_max_frames, "fps": settings.video_fps}


def decode_vision(messages: list[dict], image_patch_size: int) -> tuple[Any, Any, dict]:
    """(images, videos, video kwargs) of one conversation via qwen_vl_utils, as the reference decodes them;
    videos come as (frames, metadata) pairs. Raises :class:`MediaError` when decoding fails."""
    from qwen_vl_utils import process_vision_info

    try:
        return process_vision_info(
            messages, image_patch_size=image_patch_size, return_video_kwargs=True, return_video_metadata=True
        )
    except Exception as exc:  # decord / torchvision / PIL raise many types on bad files
        raise MediaError(f"cannot decode media: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------------------------------- backends


class TransformersBackend:
    """Hugging Face transformers generation, one row at a time (any device; for tests and small runs)."""

    def __init__(self, model_path: str, settings: GenerationSettings):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        torch.manual_seed(settings.seed)
        self.settings = settings
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype="auto").to(self.device).eval()

    def image_patch_size(self) -> int:
        return self.processor.image_processor.patch_size

    def generate(self, conversations: Sequence[tuple[list[dict], tuple]]) -> list[str | Exception]:
        """Texts (or the exception of a row that failed) for (messages, decoded vision) pairs."""
        return [self._generate_one(messages, vision) for messages, vision in conversations]

    def _generate_one(self, messages: list[dict], vision: tuple) -> str | Exception:
        import torch

        images, videos, video_kwargs = vision
        try:
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            extra = {}
            if videos:
                frames, metadata = zip(*videos)
                extra = {"videos": list(frames), "video_metadata": list(metadata), **(video_kwargs or {})}
            # qwen_vl_utils already resized to the pixel budget; the processor must not resize again.
            inputs = self.processor(text=[text], images=images, do_resize=False, return_tensors="pt", **extra)
            inputs = inputs.to(self.device)
            sampling = {"do_sample": False} if self.settings.temperature == 0 else {
                "do_sample": True, "temperature": self.settings.temperature,
                **({"top_k": self.settings.top_k} if self.settings.top_k > 0 else {})}
            with torch.inference_mode():
                generated = self.model.generate(**inputs, max_new_tokens=self.settings.max_new_tokens, **sampling)
            new_tokens = generated[0, inputs["input_ids"].shape[1] :]
            return self.processor.decode(new_tokens, skip_special_tokens=True)
        except Exception as exc:  # one row's failure (e.g. too long for the model) must not stop the run
            return exc


class VllmBackend:
    """vLLM offline generation (``vllm.LLM.generate``) with the reference's engine settings:
    ``max_model_len``, tensor parallel over the visible GPUs, vision encoder data-parallel, fixed seed."""

    def __init__(self, model_path: str, settings: GenerationSettings):
        try:
            import torch
            from transformers import AutoProcessor
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise BackendUnavailable(f"the vllm backend needs the vllm package (GPU): {exc}; use --backend hf otherwise") from None
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        torch.manual_seed(settings.seed)
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.llm = LLM(
            model=model_path,
            max_model_len=settings.max_model_len,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            mm_encoder_tp_mode="data",
            tensor_parallel_size=settings.tensor_parallel_size or max(1, torch.cuda.device_count()),
            seed=settings.seed,
        )
        self.sampling = SamplingParams(temperature=settings.temperature, max_tokens=settings.max_new_tokens, top_k=settings.top_k)

    def image_patch_size(self) -> int:
        return self.processor.image_processor.patch_size

    def generate(self, conversations: Sequence[tuple[list[dict], tuple]]) -> list[str | Exception]:
        requests = [self._request(messages, vision) for messages, vision in conversations]
        try:
            outputs = self.llm.generate(requests, sampling_params=self.sampling, use_tqdm=False)
            return [output.outputs[0].text for output in outputs]
        except Exception:  # retry row by row so that one bad row does not fail its whole batch
            logger.exception("vLLM batch failed; retrying its rows one by one")
        texts: list[str | Exception] = []
        for request in requests:
            try:
                texts.append(self.llm.generate([request], sampling_params=self.sampling, use_tqdm=False)[0].outputs[0].text)
            except Exception as exc:
                texts.append(exc)
        return texts

    def _request(self, messages: list[dict], vision: tuple) -> dict:
        images, videos, video_kwargs = vision
        multi_modal_data = {}
        if images is not None:
            multi_modal_data["image"] = images
        if videos is not None:
            multi_modal_data["video"] = videos
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return {"prompt": prompt, "multi_modal_data": multi_modal_data, "mm_processor_kwargs": video_kwargs or {}}


def check_model_path(model_path: str) -> None:
    """Refuse, in one line, a ``--model`` that is not a checkpoint folder (a folder with ``config.json``,
    e.g. verl's merged Hugging Face checkpoint); without this transformers answers with a long traceback
    about Hub repo ids. Raises ``ValueError``."""
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ValueError(f"--model {model_path}: no such folder; give a local checkpoint folder with config.json "
                         "(a Hugging Face checkpoint, e.g. the one verl's model merger writes)")
    if not (path / "config.json").is_file():
        raise ValueError(f"--model {model_path}: {'a file' if path.is_file() else 'the folder has no config.json'}; "
                         "give a local checkpoint folder with config.json (a Hugging Face checkpoint)")


def make_backend(model_path: str, settings: GenerationSettings):
    """The backend named by ``settings.backend``, loaded from ``model_path``."""
    backend = VllmBackend if settings.backend == "vllm" else TransformersBackend
    try:
        return backend(model_path, settings)
    except (OSError, ValueError, KeyError) as exc:  # transformers' answers to a folder it cannot load
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailable(f"--model {model_path}: cannot be loaded as a Qwen-VL checkpoint ({reason})") from None


# ---------------------------------------------------------------------------------------- the loop


def output_path_for(input_path: str | os.PathLike, out_dir: str | os.PathLike, settings: GenerationSettings) -> Path:
    """``OUT/<input stem><suffix>.json``, as the reference names its outputs."""
    return Path(out_dir) / f"{Path(input_path).stem}{settings.suffix}.json"


def _resume(output_path: Path, rows: list[dict]) -> list[dict]:
    """Rows already written to ``output_path``, checked against the input (same count or fewer, same
    ``problem_id`` / ``problem`` row by row); raises when the file belongs to other input."""
    if not output_path.is_file():
        return []
    payload = json.loads(output_path.read_text(encoding="utf-8"))
    written = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(written, list) or len(written) > len(rows):
        raise ValueError(f"{output_path} is not a partial output of this input ({len(rows)} rows); move it away to start over")
    for index, (done, row) in enumerate(zip(written, rows)):
        for key in ("problem_id", "problem"):
            if done.get(key) != row.get(key):
                raise ValueError(f"{output_path}: row {index + 1} has {key} {done.get(key)!r}, the input {row.get(key)!r}; "
                                 "it belongs to another input (move it away to start over)")
    return written


def _metrics_of(results: list[dict]) -> dict[str, float]:
    accumulator = MetricAccumulator()
    for row in results:
        accumulator.add(row.get("problem_type", ""), float(row.get("accuracy", 0.0)), row.get("components") or {})
    return accumulator.metrics()


def generate_file(input_path: str | os.PathLike, out_dir: str | os.PathLike, backend, model_path: str,
                  settings: GenerationSettings) -> Path:
    """Generate (or finish generating) the outputs of one benchmark file; returns the output path.

    A rerun keeps the rows already written and generates the rest, plus the written rows whose generation
    failed (e.g. media that were missing before ``--media-root`` was fixed)."""
    rows = read_benchmark_rows(input_path)
    output_path = output_path_for(input_path, out_dir, settings)
    results = _resume(output_path, rows)
    retried = [index for index, row in enumerate(results) if row.get(GENERATION_ERROR)]
    if results:
        logger.info("%s: resuming after %d of %d rows already written; retrying the %d of them that failed",
                    output_path, len(results), len(rows), len(retried))
    pending = retried + list(range(len(results), len(rows)))
    templates = load_templates(settings.prompt_templates)
    meta = {
        "benchmark": benchmark_name_of(input_path),
        "model_path": str(model_path),
        "input_json": str(input_path),
        "batch_size": settings.batch_size,
        "generation": dataclasses.asdict(settings),
    }
    progress = tqdm(total=len(rows), initial=len(rows) - len(pending), desc=Path(input_path).name, unit=" rows")
    for start in range(0, len(pending), settings.batch_size):
        indices = pending[start : start + settings.batch_size]
        batch = [rows[index] for index in indices]
        conversations, errors = [], {}
        for offset, row in enumerate(batch):
            try:
                messages = build_messages(row, settings, templates)
                conversations.append((offset, messages, decode_vision(messages, backend.image_patch_size())))
            except (RowRejected, MediaError) as exc:
                errors[offset] = str(exc)
        texts = backend.generate([(messages, vision) for _, messages, vision in conversations]) if conversations else []
        outputs: dict[int, str] = {}
        for (offset, _, _), text in zip(conversations, texts):
            if isinstance(text, Exception):
                errors[offset] = f"generation failed: {type(text).__name__}: {text}"
            else:
                outputs[offset] = text
        for offset, row in enumerate(batch):
            result = dict(row)
            result["output"] = outputs.get(offset)
            result["prediction"] = extract_prediction(result["output"])
            if offset in errors:
                result[GENERATION_ERROR] = errors[offset]
                logger.warning("%s row %d: %s", Path(input_path).name, indices[offset] + 1, errors[offset])
            if str(row.get("problem_type", "")).strip().lower() == "segmentation":
                result["predicted_answer_norm"] = result["prediction"]
            score = score_row(result)
            result["accuracy"] = score.accuracy
            if score.components:
                result["components"] = score.components
            # pending is in row order: retried rows lie inside what is written, new rows extend it
            if indices[offset] < len(results):
                results[indices[offset]] = result
            else:
                results.append(result)
        write_json_atomic(output_path, {"results": results, "metrics": _metrics_of(results), "meta": meta})
        progress.update(len(batch))
    progress.close()
    final = score_benchmark(BenchmarkOutput(meta["benchmark"], results, meta, str(output_path)))
    write_json_atomic(output_path, final.to_json())
    failed = final.meta["generation_failed_rows"]
    logger.info("%s: %d rows, %d failed generation; overall/acc %.4f", output_path, len(results), failed, final.metrics["overall/acc"])
    return output_path


def generate(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, model_path: str,
             settings: GenerationSettings) -> list[Path]:
    """Generate every input file with one engine, or with ``settings.data_parallel`` engines in
    subprocesses, each on its own group of GPUs and a share of the files."""
    check_model_path(model_path)
    if settings.data_parallel > 1 and len(inputs) > 1:
        return _generate_data_parallel(inputs, out_dir, model_path, settings)
    backend = make_backend(model_path, settings)
    return [generate_file(path, out_dir, backend, model_path, settings) for path in inputs]


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else all that torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


def _generate_data_parallel(inputs, out_dir, model_path, settings) -> list[Path]:
    gpus = visible_gpus()
    engines = min(settings.data_parallel, len(inputs))
    per_engine = len(gpus) // engines
    if per_engine == 0:
        raise ValueError(f"--data-parallel {engines} needs at least {engines} GPUs, {len(gpus)} visible")
    # Largest files first, each to the engine with the least work so far.
    shares: list[list[str]] = [[] for _ in range(engines)]
    loads = [0] * engines
    for path in sorted(inputs, key=lambda p: os.path.getsize(p), reverse=True):
        engine = loads.index(min(loads))
        shares[engine].append(str(path))
        loads[engine] += os.path.getsize(path)
    processes = []
    for engine, share in enumerate(shares):
        environment = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(gpus[engine * per_engine : (engine + 1) * per_engine]))
        # --max-failed-fraction 1: the engines only generate; the parent judges all files' failed rows together
        command = [sys.executable, "-m", "onethinker_verl.evaluate", "generate", "--model", str(model_path),
                   "--out-dir", str(out_dir), "--max-failed-fraction", "1", "--inputs", *share,
                   *settings_arguments(dataclasses.replace(settings, data_parallel=1))]
        logger.info("engine %d on GPUs %s: %d files", engine, environment["CUDA_VISIBLE_DEVICES"], len(share))
        processes.append(subprocess.Popen(command, env=environment))
    failures = [engine for engine, process in enumerate(processes) if process.wait() != 0]
    if failures:
        raise GenerationFailed(f"generation engines {failures} failed (their errors are above); rerun the same command to resume their files")
    return [output_path_for(path, out_dir, settings) for path in inputs]


@dataclass(frozen=True)
class GenerationSummary:
    """Failed generation over finished output files: ``rows`` in all, ``failed`` of them, and the first
    failure as ``<file> row <n>: <reason>`` (None when none failed)."""

    rows: int
    failed: int
    first_failure: str | None = None

    def check(self, max_failed_fraction: float) -> None:
        """Raise :class:`GenerationFailed` when every row failed and :class:`TooManyFailedRows` when more
        than ``max_failed_fraction`` of them did (1 accepts any number of failed rows)."""
        if max_failed_fraction >= 1:
            return
        if self.rows == 0:
            raise GenerationFailed("the input files hold no rows; nothing was generated")
        if self.failed == 0:
            return
        hint = ""
        if self.first_failure and MISSING_MEDIA in self.first_failure:
            hint = " (media paths resolve against --media-root; point it at the folder the rows' paths start from)"
        first = f"first: {self.first_failure}{hint}"
        if self.failed == self.rows:
            raise GenerationFailed(f"all {self.rows} rows failed generation, nothing was generated; {first}")
        if self.failed > max_failed_fraction * self.rows:
            raise TooManyFailedRows(
                f"{self.failed} of {self.rows} rows ({100 * self.failed / self.rows:.1f}%) failed generation, more than "
                f"--max-failed-fraction {max_failed_fraction:g} allows (outputs are written; rerun to retry those rows); {first}"
            )


def summarise_outputs(paths: Sequence[str | os.PathLike]) -> GenerationSummary:
    """The :class:`GenerationSummary` of finished output files (rows with ``generation_error``)."""
    rows = failed = 0
    first = None
    for path in paths:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        results = payload.get("results", []) if isinstance(payload, dict) else payload
        rows += len(results)
        for index, row in enumerate(results):
            if isinstance(row, dict) and row.get(GENERATION_ERROR):
                failed += 1
                if first is None:
                    first = f"{Path(path).name} row {index + 1}: {row[GENERATION_ERROR]}"
    return GenerationSummary(rows, failed, first)


def settings_arguments(settings: GenerationSettings) -> list[str]:
    """Command-line options that reproduce ``settings`` (for the data-parallel subprocesses)."""
    arguments = []
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if value is not None:
            arguments += [f"--{item.name.replace('_', '-')}", str(value)]
    return arguments


def add_generation_arguments(parser) -> None:
    """The :class:`GenerationSettings` as command-line options (defaults: the reference protocol)."""
    defaults = GenerationSettings()
    # Help per option; "%(default)s" is filled in by argparse. An option whose default is None says in
    # its own words what happens without it.
    helps = {
        "backend": "vllm (GPU) or hf (transformers, any device) (default: %(default)s)",
        "max_new_tokens": "most new tokens per answer (default: %(default)s)",
        "temperature": "sampling temperature, 0 = greedy (default: %(default)s)",
        "top_k": "top-k sampling, -1 = off (default: %(default)s)",
        "seed": "random seed of the engine (default: %(default)s)",
        "batch_size": "rows per batch; the output is rewritten after each (default: %(default)s)",
        "max_model_len": "vLLM context length in tokens (default: %(default)s)",
        "video_fps": "video frames sampled per second (default: %(default)s)",
        "video_max_frames": "most frames per video (default: %(default)s)",
        "video_max_pixels": "most pixels per video frame (default: %(default)s = 256x32x32)",
        "image_max_pixels": "most pixels per image (default: %(default)s = 1024x32x32)",
        "gpu_memory_utilization": "vLLM: fraction of GPU memory the engine may take (default: %(default)s)",
        "tensor_parallel_size": "vLLM: GPUs per engine, 0 = all visible GPUs (default: %(default)s)",
        "data_parallel": "vLLM: engines on disjoint GPU groups, the files shared out among them (default: %(default)s)",
        "media_root": "folder the rows' relative media paths start from (default: the current folder; "
        "run: --bench-dir)",
        "prompt_templates": "prompt template YAML (default: the packaged training templates)",
        "suffix": "output file name suffix: OUT/<input stem><suffix>.json (default: %(default)s)",
    }
    for item in dataclasses.fields(GenerationSettings):
        default = getattr(defaults, item.name)
        kind = type(default) if default is not None else str
        parser.add_argument(f"--{item.name.replace('_', '-')}", dest=item.name, type=kind, default=default,
                            choices=BACKENDS if item.name == "backend" else None, help=helps[item.name])
    parser.add_argument("--max-failed-fraction", type=_fraction, default=DEFAULT_MAX_FAILED_FRACTION,
                        help="largest fraction of rows whose generation may fail (unreadable media, a row too long) "
                        "before the command exits with code 4; when every row fails it exits with 1; "
                        "1 accepts any (default: %(default)s)")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction between 0 and 1 is expected, got {text!r}")
    return value


def settings_from_arguments(args) -> GenerationSettings:
    return GenerationSettings(**{item.name: getattr(args, item.name) for item in dataclasses.fields(GenerationSettings)})
