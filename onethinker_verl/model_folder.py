"""Whether a model path given to a OneThinker run names a Qwen-VL checkpoint, checked before anything loads it.

verl 0.9.1 hands ``actor_rollout_ref.model.path`` (RL) and ``model.path`` (SFT) to ``transformers`` inside its
workers: a folder that does not exist surfaces there as a long traceback about Hugging Face repo ids, a folder
without ``config.json`` or with another architecture only after the workers started. The start-up checks of
both recipes (and any tool that takes a model folder) call :func:`model_folder_problem` first instead.

A path that exists is read; a name that does not exist locally but is shaped like a Hugging Face repo id
(``org/name``) is looked up in the local Hugging Face cache and otherwise left to transformers to download;
remote URLs (``hdfs://``, ``s3://``, which verl copies locally) are not checked.
"""

import json
import os
import re

# model_type values of the Qwen-VL families the recipes, the SFT freezing and the processors support
QWEN_VL_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WHAT_WORKS = (
    "give the folder of a Hugging Face Qwen-VL checkpoint (config.json, weights, processor), e.g. an SFT run's "
    "global_step_<N>/huggingface, or a hub id such as Qwen/Qwen3-VL-8B-Instruct"
)


class ModelFolderError(ValueError):
    """A model path that cannot work; the message is one line naming the option and what would work."""


def _looks_like_repo_id(path: str) -> bool:
    return bool(_REPO_ID.match(path)) and not path.startswith((".", "~"))


def _cached_config(repo_id: str) -> str | None:
    """The cached ``config.json`` of a hub repo, or None when it is not in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, "config.json")
    return found if isinstance(found, str) else None


def model_folder_problem(path) -> str | None:
    """Why ``path`` cannot be a Qwen-VL policy, as ``<why>; <what would work>``, or None when it can (or
    cannot be checked here: a remote URL, a hub id that is not cached)."""
    if path is None or not str(path).strip():
        return f"no model given; {WHAT_WORKS}"
    path = str(path)
    if "://" in path:
        return None
    local = os.path.expanduser(path)
    if os.path.exists(local):
        if not os.path.isdir(local):
            return f"is a file, not a model folder; {WHAT_WORKS}"
        config_file = os.path.join(local, "config.json")
        if not os.path.isfile(config_file):
            return f"this folder has no config.json, so it is not a Hugging Face model; {WHAT_WORKS}"
    elif _looks_like_repo_id(path):
        config_file = _cached_config(path)
        if config_file is None:
            return None  # transformers downloads it (or says it is offline)
    else:
        return f"no such folder; {WHAT_WORKS}"
    try:
        with open(config_file, encoding="utf-8") as handle:
            model_type = json.load(handle).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        return f"its config.json cannot be read ({error}); {WHAT_WORKS}"
    if model_type not in QWEN_VL_MODEL_TYPES:
        return (
            f"config.json says model_type={model_type!r}, not a Qwen-VL model; the OneThinker recipes train "
            f"Qwen-VL checkpoints ({', '.join(QWEN_VL_MODEL_TYPES)})"
        )
    return None


def check_model_folder(path, key: str) -> None:
    """Raise :class:`ModelFolderError` (``<key>=<path>: <why>; <what would work>``) unless ``path`` can be a
    Qwen-VL policy (see :func:`model_folder_problem`). ``key`` is the option or config key the user set."""
    problem = model_folder_problem(path)
    if problem is not None:
        raise ModelFolderError(f"{key}={path}: {problem}")
