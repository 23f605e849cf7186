"""The per-row work of ``data_prep/prepare_rl.py`` that needs media: decode checks and prompt lengths, run in
a process pool (``--workers``), results handed back in input order.

The prompt length is what verl's own ``RLHFDataset.maybe_filter_out_long_prompts`` measures, computed
offline: the row's chat prompt with its media items (built by verl's ``RLHFDataset._build_messages``),
rendered by the model's processor (``apply_chat_template``), its media decoded by
``qwen_vl_utils.process_vision_info`` and tokenised by verl's ``build_multimodal_processor_inputs``, so the
count includes every vision token. ``OneThinkerDataset`` then filters on the stored column at start-up
without decoding anything.
"""

import concurrent.futures
import multiprocessing
import types
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .corpus import MEDIA_MISSING, MEDIA_UNREADABLE, CorpusRow, verl_rl_record
from .media import MediaSettings, check_media_file, resolve_media_path
from .prompts import PromptTemplates

ROWS_PER_TASK = 8  # rows sent to a worker at once: amortises inter-process overhead, keeps order cheap


@dataclass
class RowWorkOptions:
    media_root: str | None
    check_media: str  # one of media.CHECK_MODES
    templates: PromptTemplates
    prompt_length_model: str | None = None  # processor folder / hub id; None = no length column
    media_settings: MediaSettings = field(default_factory=MediaSettings)


@dataclass
class RowOutcome:
    """``rejection`` is ``(reason, detail)`` or None; ``prompt_length`` is set when lengths are computed."""

    rejection: tuple[str, str] | None = None
    prompt_length: int | None = None


_worker: dict = {}  # per process: the options and, when lengths are computed, the loaded processor


def init_worker(options: RowWorkOptions) -> None:
    _worker.clear()
    _worker["options"] = options
    if options.prompt_length_model is not None:
        from transformers import AutoProcessor

        _worker["processor"] = AutoProcessor.from_pretrained(options.prompt_length_model)


def _check_files(row: CorpusRow, options: RowWorkOptions) -> tuple[str, str] | None:
    """Every failing file of the row (not just the first), with the decoder's reason."""
    failures = []
    for modality, paths in (("image", row.images), ("video", row.videos)):
        for path in paths:
            try:
                check_media_file(resolve_media_path(path, options.media_root), modality, options.check_media)
            except Exception as rejection:  # RowRejected from the check
                failures.append((rejection.reason, rejection.detail))
    if not failures:
        return None
    reason = MEDIA_MISSING if any(reason == MEDIA_MISSING for reason, _ in failures) else MEDIA_UNREADABLE
    return reason, "; ".join(detail for _, detail in failures)


def prompt_length(row: CorpusRow, position: int, options: RowWorkOptions, processor) -> int:
    """Tokens of the row's prompt as verl's agent loop feeds it to the model (vision tokens included)."""
    from qwen_vl_utils import process_vision_info
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    record = verl_rl_record(row, position, options.templates)
    settings = options.media_settings
    example = {
        "prompt": [dict(message) for message in record["prompt"]],
        "images": [settings.image_item(resolve_media_path(p, options.media_root)) for p in row.images],
        "videos": [settings.video_item(resolve_media_path(p, options.media_root)) for p in row.videos],
    }
    # verl's own placeholder expansion; it reads only these attributes of the dataset
    holder = types.SimpleNamespace(image_key="images", video_key="videos", audio_key="audios", processor=processor)
    messages = RLHFDataset._build_messages(holder, example, "prompt")
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if not row.images and not row.videos:
        return len(processor.tokenizer(text=text, add_special_tokens=False, return_attention_mask=False)["input_ids"])
    patch_size = getattr(getattr(processor, "image_processor", None), "patch_size", 14)
    images, videos = process_vision_info(messages, image_patch_size=patch_size, return_video_metadata=True)
    inputs = build_multimodal_processor_inputs(processor, text=[text], images=images, videos=videos)
    return len(inputs["input_ids"][0])


def work_on_rows(rows: list[tuple[CorpusRow | None, int]]) -> list[RowOutcome]:
    options: RowWorkOptions = _worker["options"]
    outcomes = []
    for row, position in rows:
        if row is None:  # rejected before any work; it only keeps its place in the order
            outcomes.append(RowOutcome())
            continue
        rejection = _check_files(row, options)
        if rejection is not None or options.prompt_length_model is None:
            outcomes.append(RowOutcome(rejection))
            continue
        try:
            length = prompt_length(row, position, options, _worker["processor"])
        except Exception as exc:  # a file that passed the check but does not decode for the model
            files = ", ".join(row.images + row.videos)
            outcomes.append(RowOutcome((MEDIA_UNREADABLE, f"{files}: {type(exc).__name__}: {exc}")))
            continue
        outcomes.append(RowOutcome(prompt_length=length))
    return outcomes


def ordered_row_work(
    rows: Iterable[tuple[CorpusRow | None, int, object]], options: RowWorkOptions, workers: int
) -> Iterator[tuple[object, RowOutcome]]:
    """``(tag, outcome)`` for each ``(row, position, tag)`` of ``rows``, in input order. A ``row`` of None (one
    rejected before any work) gets an empty outcome in its place, so reports built from the results keep the
    input order.

    ``workers`` > 1 runs :func:`work_on_rows` in that many spawned processes (spawned, not forked: the
    parent may hold torch / Ray threads) with a bounded window of pending tasks, so memory stays flat."""
    if workers <= 1:
        init_worker(options)
        for row, position, tag in rows:
            yield tag, work_on_rows([(row, position)])[0]
        return
    context = multiprocessing.get_context("spawn")
    window = 4 * workers
    with concurrent.futures.ProcessPoolExecutor(workers, context, init_worker, (options,)) as pool:
        pending: deque = deque()
        for chunk in _chunks(rows, ROWS_PER_TASK):
            pending.append((pool.submit(work_on_rows, [(row, position) for row, position, _ in chunk]), chunk))
            while len(pending) >= window:
                yield from _collect(pending.popleft())
        while pending:
            yield from _collect(pending.popleft())


def _collect(entry) -> Iterator[tuple[object, RowOutcome]]:
    future, chunk = entry
    for (_, _, tag), outcome in zip(chunk, future.result(), strict=True):
        yield tag, outcome


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def needs_worker_pool(options: RowWorkOptions) -> bool:
    """Whether the rows need more than a ``stat`` (decode checks or lengths): only then is a pool worth it."""
    return options.check_media == "decode" or options.prompt_length_model is not None
