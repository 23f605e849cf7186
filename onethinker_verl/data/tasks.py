"""The OneThinker task vocabulary: problem types, data types and the per-task ``data_source`` name."""

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
    """verl groups validation metrics by ``data_source``; one value per task and modality.

    Spaces become underscores so the value is a clean metric-name segment, e.g.
    ``onethinker/multiple_choice/image``.
    """
    return f"onethinker/{problem_type.lower().replace(' ', '_')}/{data_type}"
