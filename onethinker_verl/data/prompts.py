"""The prompt builder shared by data_prep and the dataset class.

Templates come from a YAML file (default: ``templates/default.yaml`` in this package); the layout of that file
is documented at its top. Loading validates it, so a replaced file with a missing task fails at start-up
naming the file and the task instead of producing silently different prompts.
"""

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .tasks import PROBLEM_TYPES

DEFAULT_TEMPLATES_PATH = Path(__file__).parent / "templates" / "default.yaml"

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"
_PLACEHOLDER_PATTERN = re.compile(r"<image>|<video>")


@dataclass(frozen=True)
class PromptTemplates:
    path: str
    options_header: str
    instruction: str
    tasks: dict

    def task_instruction(self, problem_type: str, data_type: str) -> str:
        specific = self.tasks.get(f"{problem_type}/{data_type}")
        if specific is not None:
            return specific
        generic = self.tasks.get(problem_type)
        if generic is None:
            raise KeyError(
                f"prompt templates {self.path} have no entry for task '{problem_type}' "
                f"(expected tasks['{problem_type}'] or tasks['{problem_type}/{data_type}'])"
            )
        return generic


def _require_text(document: dict, key: str, path: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"prompt templates {path}: '{key}' must be a non-empty string, got {value!r}")
    return value.strip()


@functools.lru_cache(maxsize=8)
def _load_templates_cached(resolved_path: str, mtime_ns: int) -> PromptTemplates:
    with open(resolved_path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict):
        raise ValueError(f"prompt templates {resolved_path}: expected a YAML mapping at the top level")
    tasks = document.get("tasks")
    if not isinstance(tasks, dict):
        raise ValueError(f"prompt templates {resolved_path}: 'tasks' must be a mapping of problem type to text")
    clean_tasks = {}
    for name, text in tasks.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"prompt templates {resolved_path}: tasks['{name}'] must be a non-empty string")
        clean_tasks[str(name)] = text.strip()
    for problem_type in PROBLEM_TYPES:
        # segmentation may be split per data type; then both modalities need an entry
        has_generic = problem_type in clean_tasks
        has_split = all(f"{problem_type}/{dt}" in clean_tasks for dt in ("image", "video"))
        if not (has_generic or has_split):
            raise ValueError(
                f"prompt templates {resolved_path}: no instruction for task '{problem_type}' "
                f"(add tasks['{problem_type}'], or both tasks['{problem_type}/image'] and tasks['{problem_type}/video'])"
            )
    return PromptTemplates(
        path=resolved_path,
        options_header=_require_text(document, "options_header", resolved_path),
        instruction=_require_text(document, "instruction", resolved_path),
        tasks=clean_tasks,
    )


def load_templates(path: str | os.PathLike | None = None) -> PromptTemplates:
    """Load and validate a template file; ``None`` means the packaged default templates."""
    resolved = Path(path).expanduser().resolve() if path else DEFAULT_TEMPLATES_PATH
    if not resolved.is_file():
        raise FileNotFoundError(f"prompt templates file not found: {resolved}")
    # keyed on mtime so an edited file is re-read, while a dataset building 600k prompts reads it once
    return _load_templates_cached(str(resolved), resolved.stat().st_mtime_ns)


def count_placeholders(text: str) -> tuple[int, int]:
    """Numbers of ``<image>`` and ``<video>`` placeholders in ``text``."""
    found = _PLACEHOLDER_PATTERN.findall(text)
    return found.count(IMAGE_PLACEHOLDER), found.count(VIDEO_PLACEHOLDER)


def build_prompt_text(
    question: str,
    problem_type: str,
    data_type: str,
    options: list[str] | None,
    num_images: int,
    num_videos: int,
    templates: PromptTemplates,
) -> str:
    """The user message text, with one placeholder per media item.

    A question that already places its placeholders keeps them where they are (the counts must match the
    media, which :mod:`.corpus` checks); otherwise the placeholders go first, the videos before the images,
    as in Qwen-VL's own examples.
    """
    parts = []
    if count_placeholders(question) == (0, 0):
        leading = VIDEO_PLACEHOLDER * num_videos + IMAGE_PLACEHOLDER * num_images
        parts.append(leading + question.strip())
    else:
        parts.append(question.strip())
    if problem_type == "multiple choice" and options:
        parts.append(templates.options_header + "\n" + "\n".join(option.strip() for option in options))
    parts.append(templates.instruction)
    parts.append(templates.task_instruction(problem_type, data_type))
    return "\n".join(parts)


def build_chat_prompt(*args, **kwargs) -> list[dict]:
    """:func:`build_prompt_text` as the single-turn chat verl's ``prompt`` column holds."""
    return [{"role": "user", "content": build_prompt_text(*args, **kwargs)}]
