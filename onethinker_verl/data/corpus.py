"""Parsing and validation of OneThinker rows, shared by the converters and the dataset class.

A raw row becomes a :class:`CorpusRow` or raises :class:`RowRejected` with one reason from
:data:`REJECT_REASONS`; the converters write that reason to ``rejected.jsonl`` and the dataset class puts it
in its error message, so both report the same problem the same way.
"""

import json
import re
from dataclasses import dataclass, field

from .prompts import PromptTemplates, build_chat_prompt, count_placeholders
from .tasks import canonical_data_type, canonical_problem_type, task_data_source

# The fixed set of reasons a row is rejected for (documented in the README).
MALFORMED_JSON = "malformed JSON"
NOT_AN_OBJECT = "not a JSON object"
UNKNOWN_PROBLEM_TYPE = "unknown problem type"
UNKNOWN_DATA_TYPE = "unknown data type"
MISSING_QUESTION = "missing question"
MISSING_GROUND_TRUTH = "missing ground truth"
MALFORMED_GROUND_TRUTH = "malformed ground truth"
MALFORMED_OPTIONS = "malformed options"
MALFORMED_MEDIA_FIELD = "malformed media field"
MEDIA_DOES_NOT_MATCH = "media does not match data type"
MEDIA_MISSING = "media file missing"
MEDIA_UNREADABLE = "media unreadable"
MALFORMED_MESSAGES = "malformed messages"
OVER_TASK_CAP = "over per-task cap"
REJECT_REASONS = (
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    UNKNOWN_PROBLEM_TYPE,
    UNKNOWN_DATA_TYPE,
    MISSING_QUESTION,
    MISSING_GROUND_TRUTH,
    MALFORMED_GROUND_TRUTH,
    MALFORMED_OPTIONS,
    MALFORMED_MEDIA_FIELD,
    MEDIA_DOES_NOT_MATCH,
    MEDIA_MISSING,
    MEDIA_UNREADABLE,
    MALFORMED_MESSAGES,
    OVER_TASK_CAP,
)

# Tasks whose ground truth is a JSON object (rewards.md); anything else is compared as text.
STRUCTURED_TASKS = frozenset(
    {"temporal grounding", "spatial grounding", "spatial-temporal grounding", "tracking", "segmentation"}
)

_ANSWER_WRAPPER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


class RowRejected(ValueError):
    """A row that cannot be used; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class FieldNames:
    """Where a row keeps each field; the converters' ``--*-key`` options override these."""

    question: str = "problem"
    answer: tuple[str, ...] = ("answer", "solution")  # the first one present is used
    problem_type: str = "problem_type"
    data_type: str = "data_type"
    options: str = "options"
    row_id: tuple[str, ...] = ("problem_id", "id")
    source: str = "data_source"
    # None: read `images` / `videos` lists, falling back to the single `path` (+ `additional_path`) of the
    # earlier format. A name: that key alone holds the media (a path or a list), its modality from data_type.
    media: str | None = None
    additional_media: str = "additional_path"


@dataclass
class CorpusRow:
    row_id: str
    question: str
    problem_type: str
    data_type: str
    ground_truth: str
    options: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    source: str = ""


def ground_truth_inner(ground_truth: str) -> str:
    """The ground truth as the reward reads it: the stripped inside of an ``<answer>`` wrapper, if non-empty."""
    match = _ANSWER_WRAPPER.search(ground_truth)
    if match and match.group(1).strip():
        return match.group(1).strip()
    return ground_truth


def _first_present(raw: dict, keys: tuple[str, ...]):
    for key in keys:
        if raw.get(key) not in (None, ""):
            return raw[key]
    return None


def _as_path_list(value, key: str) -> list[str]:
    if value is None or value == "":
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) and item.strip() for item in values):
        raise RowRejected(MALFORMED_MEDIA_FIELD, f"'{key}' must be a path or a list of paths, got {value!r}")
    return [item.strip() for item in values]


def _media_lists(raw: dict, names: FieldNames, data_type: str | None) -> tuple[list[str], list[str]]:
    if names.media is None and (raw.get("images") or raw.get("videos")):
        return _as_path_list(raw.get("images"), "images"), _as_path_list(raw.get("videos"), "videos")
    key = names.media or "path"
    main = _as_path_list(raw.get(key), key)
    extra = _as_path_list(raw.get(names.additional_media), names.additional_media)
    if not main and not extra:
        return [], []
    if data_type in ("video", "video-image"):
        return extra, main
    if data_type == "image":
        return main + extra, []
    raise RowRejected(
        MEDIA_DOES_NOT_MATCH, f"media under '{key}' needs data_type image, video or video-image, got {data_type!r}"
    )


def _check_media_against_type(data_type: str, images: list[str], videos: list[str]) -> None:
    expected = {
        "image": bool(images) and not videos,
        "video": bool(videos) and not images,
        "video-image": bool(videos) and bool(images),
        "text": not images and not videos,
    }[data_type]
    if not expected:
        raise RowRejected(
            MEDIA_DOES_NOT_MATCH, f"data_type {data_type!r} with {len(images)} image(s) and {len(videos)} video(s)"
        )


def _ground_truth_text(value, problem_type: str) -> str:
    if value is None or value == "" or isinstance(value, bool):
        raise RowRejected(MISSING_GROUND_TRUTH)
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        raise RowRejected(MALFORMED_GROUND_TRUTH, f"unsupported type {type(value).__name__}")
    wrapped = _ANSWER_WRAPPER.fullmatch(text)
    if not text or (wrapped and not wrapped.group(1).strip()):
        raise RowRejected(MISSING_GROUND_TRUTH, "empty answer")
    if problem_type in STRUCTURED_TASKS:
        try:
            parsed = json.loads(ground_truth_inner(text))
        except json.JSONDecodeError as exc:
            raise RowRejected(MALFORMED_GROUND_TRUTH, f"'{problem_type}' needs a JSON object: {exc.msg}") from None
        if not isinstance(parsed, dict):
            raise RowRejected(MALFORMED_GROUND_TRUTH, f"'{problem_type}' needs a JSON object, got {type(parsed).__name__}")
    return text


def row_id_of(raw, names: FieldNames = FieldNames()) -> str | None:
    """The row's own id, if it has one (for reporting rows that fail before parsing completes)."""
    if not isinstance(raw, dict):
        return None
    value = _first_present(raw, names.row_id)
    return None if value is None else str(value)


def parse_row(raw, names: FieldNames = FieldNames(), fallback_id: str = "") -> CorpusRow:
    """Validate one raw OneThinker RL/eval row; raises :class:`RowRejected`."""
    if not isinstance(raw, dict):
        raise RowRejected(NOT_AN_OBJECT, f"got {type(raw).__name__}")
    problem_type = canonical_problem_type(raw.get(names.problem_type))
    if problem_type is None:
        raise RowRejected(UNKNOWN_PROBLEM_TYPE, repr(raw.get(names.problem_type)))

    raw_data_type = raw.get(names.data_type)
    data_type = canonical_data_type(raw_data_type)
    if raw_data_type not in (None, "") and data_type is None:
        raise RowRejected(UNKNOWN_DATA_TYPE, repr(raw_data_type))
    images, videos = _media_lists(raw, names, data_type)
    if data_type is None:  # absent: the media tell
        data_type = "video" if videos else "image" if images else "text"
    _check_media_against_type(data_type, images, videos)

    question = raw.get(names.question)
    if not isinstance(question, str) or not question.strip():
        raise RowRejected(MISSING_QUESTION, f"no text under '{names.question}'")
    placed = count_placeholders(question)
    if placed != (0, 0) and placed != (len(images), len(videos)):
        raise RowRejected(
            MEDIA_DOES_NOT_MATCH,
            f"question has {placed[0]} <image> / {placed[1]} <video> placeholders for "
            f"{len(images)} image(s) / {len(videos)} video(s)",
        )

    options = raw.get(names.options) or []
    if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
        raise RowRejected(MALFORMED_OPTIONS, f"'{names.options}' must be a list of strings")

    ground_truth = _ground_truth_text(_first_present(raw, names.answer), problem_type)
    row_id = row_id_of(raw, names)
    source = raw.get(names.source)
    return CorpusRow(
        row_id=row_id if row_id is not None else fallback_id,
        question=question.strip(),
        problem_type=problem_type,
        data_type=data_type,
        ground_truth=ground_truth,
        options=options,
        images=images,
        videos=videos,
        source=source if isinstance(source, str) else "",
    )


def verl_rl_record(row: CorpusRow, position: int, templates: PromptTemplates) -> dict:
    """The row in the layout verl's RLHFDataset reads (see :data:`onethinker_verl.data.schema.RL_SCHEMA`)."""
    return {
        "data_source": task_data_source(row.problem_type, row.data_type),
        "prompt": build_chat_prompt(
            row.question, row.problem_type, row.data_type, row.options, len(row.images), len(row.videos), templates
        ),
        "images": row.images,
        "videos": row.videos,
        "reward_model": {"style": "rule", "ground_truth": row.ground_truth},
        "extra_info": {
            "index": position,
            "id": row.row_id,
            "problem_type": row.problem_type,
            "data_type": row.data_type,
            "question": row.question,
            "options": row.options,
            "source": row.source,
        },
    }
