"""Start-up check of a OneThinker SFT run: refuses, in one line per setting, a configuration that cannot work
before verl's SFT trainer builds the model.

Why it exists: ``verl.trainer.sft_trainer`` (verl 0.9.1) resolves its configuration only inside each torchrun
worker, after the process group is up: without ``data.train_files`` the recipe's required-value marker
surfaces as an interpolation error in torchrun's ChildFailedError banner, a missing model folder as a
transformers traceback about repo ids, and missing media only when the dataset is built on every rank.

What it checks (:func:`check_sft_config`): ``data.train_files`` given, its files (and ``data.val_files``)
present and readable as parquet; ``data.media_root`` a folder; every media file of the rows present (unless
``data.check_media_on_load=off`` or ``data.skip_missing_media=true``, which the dataset then applies);
``model.path`` a Qwen-VL checkpoint (:mod:`onethinker_verl.model_folder`).

How it runs, in order of preference:

* before torchrun starts any worker: ``python -m onethinker_verl.sft.startup_check +recipe=onethinker_sft
  <the same overrides>`` composes verl's ``sft_trainer_engine`` config exactly as the trainer will and checks
  it (the launch scripts ``recipes/launch_sft_*.sh`` do this, then tell the workers it was done through
  ``ONETHINKER_SFT_CHECKED=1``);
* as a Hydra callback the recipe declares (``hydra.callbacks.onethinker_sft_startup_check``): Hydra calls
  :meth:`SFTStartupCheck.on_job_start` in every worker before verl's task function, so before the process
  group and the model; rank 0 checks, the other ranks wait for it in the process group, and torchrun stops
  them when rank 0 exits. Launched by torchrun directly, torchrun adds its own failure banner after the
  refusal lines; launched by a launch script or as a single process, the refusal is all that is printed.

The callback first refuses the recipe when the app is not the SFT trainer (``main_ppo +recipe=onethinker_sft``,
see :mod:`onethinker_verl.recipe_entry`). Every refusal reads ``onethinker-verl start-up check: <key>=<value>:
<why>; <what would work>``, and the process exits with status 1.
"""

import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from onethinker_verl.data.media import check_mode_from_config
from onethinker_verl.recipe_entry import SFT, entry_point_problem
from onethinker_verl.sft.settings import stored_media_paths
from onethinker_verl.startup_check import PREFIX, _files, _is_required_marker, model_path_problems, problem

CHECKED_ENV = "ONETHINKER_SFT_CHECKED"  # set by the launch scripts once the check passed before torchrun
_LISTED = 5  # missing media files named in the refusal; the rest are counted


def _check_files(data: DictConfig) -> Iterable[str]:
    if _is_required_marker(data, "train_files"):
        yield problem(
            "data.train_files", "(not set)", "the SFT recipe has no default corpus",
            "pass data.train_files=<train.parquet written by data_prep/prepare_sft.py>",
        )
        return
    for key in ("train_files", "val_files"):
        value = data.get(key, None)
        if value is None:
            continue
        for path in _files(value):
            if not os.path.isfile(path):
                yield problem(f"data.{key}", value, f"no such file: {path}",
                              "point it at the train.parquet / val.parquet of data_prep/prepare_sft.py")


def _missing_media(data: DictConfig, media_root: str | None) -> Iterable[str]:
    """``<file> row <n>: <path>`` for every media file of the training rows that does not exist."""
    import pyarrow.parquet as pq

    keys = [data.get("image_key", "images"), data.get("video_key", "videos")]
    for path in _files(data.train_files):
        columns = [key for key in keys if key in pq.read_schema(path).names]
        if not columns:
            continue
        table = pq.read_table(path, columns=columns)
        for key in columns:
            for row, items in enumerate(table.column(key).to_pylist()):
                for media in stored_media_paths(items, media_root):
                    if "://" not in media and not os.path.isfile(media):
                        yield f"{path} row {row}: {media}"


def _check_media(data: DictConfig) -> Iterable[str]:
    root = data.get("media_root", None)
    media_root = os.path.expanduser(str(root)) if root is not None else None
    if media_root is not None and not os.path.isdir(media_root):
        yield problem("data.media_root", root, "no such folder",
                      "give the folder the rows' relative media paths start from (prepare_sft.py --media-root)")
        return
    if check_mode_from_config(data.get("check_media_on_load", "exists")) == "off":
        return
    if bool(data.get("skip_missing_media", False)):
        return  # the dataset drops and counts those rows
    try:
        missing = list(_missing_media(data, media_root))
    except Exception as error:  # pyarrow's reason why a file is not the parquet prepare_sft.py writes
        yield problem("data.train_files", data.train_files, f"cannot be read as parquet ({error})",
                      "convert the SFT files with data_prep/prepare_sft.py")
        return
    if missing:
        more = len(missing) - _LISTED
        listed = "; ".join(missing[:_LISTED]) + (f" (and {more} more)" if more > 0 else "")
        yield problem(
            "data.media_root", root, f"{len(missing)} media file(s) of data.train_files do not exist: {listed}",
            "set data.media_root to the folder the media paths are relative to, or data.skip_missing_media=true "
            "to train without those rows",
        )


def check_sft_config(config: DictConfig) -> list[str]:
    """The refusals of the SFT configuration ``config`` (verl's ``sft_trainer_engine`` with the recipe), one
    line each; empty when it can run."""
    problems = list(_check_files(config.data))
    if not problems:
        problems += _check_media(config.data)
    return problems + model_path_problems("model.path", config.model.get("path", None))


class SFTStartupCheck(Callback):
    """Hydra callback (``hydra.callbacks``) of the SFT recipe: see the module docstring."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        wrong_trainer = entry_point_problem(SFT)
        if wrong_trainer is not None:
            raise SystemExit(f"{PREFIX}: {wrong_trainer}")
        if os.environ.get(CHECKED_ENV) == "1" or int(os.environ.get("RANK", "0")) != 0:
            return
        problems = check_sft_config(config)
        if problems:
            raise SystemExit("\n".join(problems))


def compose_sft_config(overrides: list[str]) -> DictConfig:
    """verl's ``sft_trainer_engine`` config with ``overrides``, composed as ``verl.trainer.sft_trainer`` does
    (verl's config folder is found without importing verl, which takes seconds)."""
    from hydra import compose, initialize_config_dir

    import onethinker_verl.resolvers  # noqa: F401  (the recipe's ${onethinker_required:...} marker)

    verl_folder = importlib.util.find_spec("verl").submodule_search_locations[0]
    config_dir = str(Path(verl_folder) / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="sft_trainer_engine", overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    """``python -m onethinker_verl.sft.startup_check HYDRA_OVERRIDE ...``: the check, before torchrun."""
    overrides = sys.argv[1:] if argv is None else argv
    try:
        config = compose_sft_config(overrides)
    except Exception as error:  # Hydra's reason: an unknown key, a malformed override
        reason = " ".join(str(error).split())
        print(f"{PREFIX}: cannot compose the SFT configuration from {' '.join(overrides)}: {reason}", file=sys.stderr)
        return 1
    problems = check_sft_config(config)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("onethinker-verl SFT start-up check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
