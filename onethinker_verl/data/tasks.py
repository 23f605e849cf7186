"""The OneThinker task vocabulary: problem types, data types, the canonical task name and the per-task
``data_source`` name."""

import re

# Spelled as the reward specification spells them; input matching is case-insensitive.
PROBLEM_TYPES = (
    "multiple choice",
    "numerical",
    "regression",
    "OCR",
    "open-ended",
    "math",
    "temporal grounding",
    "spatial grounding",
    "spatial-temporal grounding",
    "tracking",
    "segmentation",
)
_PROBLEM_TYPE_BY_LOWER = {name.lower(): name for name in PROBLEM_TYPES}

# The name of a task given to a row whose problem type is missing or not a string.
UNKNOWN_TASK = "unknown"


def _snake_case(problem_type: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", problem_type.strip().lower()).strip("_") or UNKNOWN_TASK


# Precomputed for the canonical spellings: the EMA-GRPO estimator names every sample of a batch.
_TASK_NAME_BY_PROBLEM_TYPE = {problem_type: _snake_case(problem_type) for problem_type in PROBLEM_TYPES}


def task_name(problem_type) -> str:
    """The one spelling of a task in every metric key, data source and state file: the problem type in
    snake case, e.g. ``"multiple choice"`` -> ``"multiple_choice"``, ``"OCR"`` -> ``"ocr"``,
    ``"spatial-temporal grounding"`` -> ``"spatial_temporal_grounding"``; anything empty or not a string ->
    ``"unknown"``."""
    if not isinstance(problem_type, str):
        return UNKNOWN_TASK
    name = _TASK_NAME_BY_PROBLEM_TYPE.get(problem_type)
    return name if name is not None else _snake_case(problem_type)


# The canonical task names of :data:`PROBLEM_TYPES`, in the same order.
TASK_NAMES = tuple(task_name(problem_type) for problem_type in PROBLEM_TYPES)

# Training rows are image, video or text-only; `video-image` (a video plus one extra image) occurs in eval files.
DATA_TYPES = ("image", "video", "text", "video-image")


def canonical_problem_type(value) -> str | None:
    """The canonical spelling of a problem type, or None when it is not a OneThinker task."""
    if not isinstance(value, str):
        return None
    return _PROBLEM_TYPE_BY_LOWER.get(value.strip().lower())


def canonical_data_type(value) -> str | None:
    """The lower-case data type, or None when it is not one of :data:`DATA_TYPES`."""
    if not isinstance(value, str):
        return None
    lowered = value.strip().lower()
    return lowered if lowered in DATA_TYPES else None


def task_data_source(problem_type: str, data_type: str) -> str:
    """verl groups validation metrics by ``data_source``; one value per task and modality, named with
    :func:`task_name`, e.g. ``onethinker/multiple_choice/image``."""
    return f"onethinker/{task_name(problem_type)}/{data_type}"
