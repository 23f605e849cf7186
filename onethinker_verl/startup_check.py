"""Start-up check of a OneThinker RL run: refuses, in the driver process and before verl starts Ray, a
configuration that cannot work.

Why it exists: ``python -m verl.trainer.main_ppo`` (verl 0.9.1) validates batch divisibility and the actor
settings in the driver (``verl.utils.config.validate_config``), but it

* never instantiates the ``_target_`` dataclasses a recipe declares under ``algorithm``, so their
  ``__post_init__`` range checks (:mod:`onethinker_verl.advantage.config`) do not run;
* learns that the corpus is smaller than one batch only inside the trainer, after the GPU workers have
  started (zero steps per epoch, then a ZeroDivisionError), and on a machine that cannot host them it
  waits forever for TransferQueue storage actors instead;
* skips the check that a batch is a whole number of policy-update mini-batches when dynamic batching is on;
* given no Ray cluster, starts a local Ray on a machine with fewer GPUs than ``trainer.nnodes`` x
  ``trainer.n_gpus_per_node`` and then waits without a word for placement groups that can never be scheduled
  (:func:`check_machine`, run by the Hydra callback only: it looks at this machine, not at the config; with a
  Ray cluster, :mod:`onethinker_verl.resource_wait` logs what the run waits for instead).
* hands ``actor_rollout_ref.model.path`` to transformers only in the workers, where a missing folder is a
  traceback about repo ids (checked by the callback: :mod:`onethinker_verl.model_folder`);
* runs whatever recipe Hydra offers, the SFT one included (refused by the callback:
  :mod:`onethinker_verl.recipe_entry`).

How it runs: as a Hydra callback that the recipes declare
(``hydra.callbacks.onethinker_startup_check._target_: onethinker_verl.startup_check.StartupCheck``). Hydra
calls :meth:`StartupCheck.on_job_start` with the composed configuration before it calls main_ppo's task
function, so before verl's own validation, ``ray.init`` and the printed config. A configuration composed
without one of the recipes is not checked. :func:`check_config` is the same check of the configuration for
programmatic callers (the CPU dry run calls it); the callback adds :func:`check_machine`.

Every refusal reads ``onethinker-verl start-up check: <key>=<value>: <why>; <what would work>``; all
refusals found are reported together, one per line, and the process exits with status 1.
"""

import json
import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from onethinker_verl.resolvers import REQUIRED_RESOLVER

logger = logging.getLogger(__name__)

PREFIX = "onethinker-verl start-up check"
# Estimators that normalise each reward against the other responses to the same prompt.
GROUP_ESTIMATORS = frozenset({"ema_grpo", "grpo", "rloo", "grpo_passk", "grpo_vectorized", "gdpo"})


class StartupCheckError(ValueError):
    """One or more settings that cannot work; ``problems`` holds one formatted line per setting."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def problem(key: str, value: Any, why: str, fix: str) -> str:
    """The one-line form of a refused setting."""
    return f"{PREFIX}: {key}={value}: {why}; {fix}"


def _files(value: Any) -> list[str]:
    if isinstance(value, (list, tuple, ListConfig)):
        return [os.path.expanduser(str(item)) for item in value]
    return [os.path.expanduser(str(value))]


def count_file_rows(path: str) -> int:
    """Rows of one data file without loading it: parquet from its metadata, JSON Lines by counting
    non-blank lines, a JSON array by parsing it (the raw OneThinker release format)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, encoding="utf-8") as handle:
        head = handle.read(4096).lstrip()
        handle.seek(0)
        if path.endswith(".json") and head.startswith("["):
            return len(json.load(handle))
        return sum(1 for line in handle if line.strip())


def count_training_rows(data: DictConfig) -> tuple[int, str]:
    """Training rows the dataset will serve, and how they were counted.

    With a ``data.custom_cls`` that offers ``count_usable_rows(data_files, data_config, max_samples)`` (the
    OneThinker dataset), the count is the dataset's own, after its start-up filtering. Otherwise the rows of
    the files are counted (capped by ``data.train_max_samples``): an upper bound, since verl's
    ``filter_overlong_prompts`` may still drop some.
    """
    files = _files(data.train_files)
    max_samples = int(data.get("train_max_samples", -1) or -1)
    custom = data.get("custom_cls", None)
    if custom is not None and custom.get("path", None):
        from verl.utils.import_utils import load_extern_object

        dataset_cls = load_extern_object(custom.path, custom.name)
        counter = getattr(dataset_cls, "count_usable_rows", None)
        if counter is not None:
            return int(counter(files, data, max_samples=max_samples)), f"usable rows by {dataset_cls.__name__}"
    rows = sum(count_file_rows(path) for path in files)
    if max_samples > 0:
        rows = min(rows, max_samples)
    return rows, "rows in the files (an upper bound: over-long prompts may still be filtered)"


def _is_required_marker(node: DictConfig, key: str) -> bool:
    """Whether ``node.key`` is still the recipe's ``${onethinker_required:...}`` marker (no value given)."""
    raw = OmegaConf.to_container(node, resolve=False).get(key)
    return OmegaConf.is_missing(node, key) or str(raw).startswith("${" + REQUIRED_RESOLVER + ":")


def _check_data(config: DictConfig) -> Iterable[str]:
    data = config.data
    batch = int(data.train_batch_size)
    if _is_required_marker(data, "train_files"):
        yield problem(
            "data.train_files", "(not set)", "the recipe has no default corpus",
            "pass data.train_files=<train.parquet written by data_prep/prepare_rl.py>, "
            "or use +recipe=onethinker_smoke for the bundled sample corpus",
        )
        return
    missing = [path for path in _files(data.train_files) if not os.path.exists(path)]
    if missing:
        yield problem("data.train_files", data.train_files, f"no such file: {', '.join(missing)}",
                      "point data.train_files at prepared parquet (data_prep/prepare_rl.py) or OneThinker JSON")
        return
    # verl builds the validation dataset even when it never validates
    missing_val = [path for path in _files(data.val_files) if not os.path.exists(path)]
    if missing_val:
        yield problem("data.val_files", data.val_files, f"no such file: {', '.join(missing_val)}",
                      "point it at a prepared val.parquet, or leave it out: it follows data.train_files")
    try:
        rows, how = count_training_rows(data)
    except (OSError, ValueError) as error:  # the dataset's own start-up refusal (missing media, bad rows, ...)
        yield f"{PREFIX}: data.train_files={data.train_files}: {error}"
        return
    if rows < batch:
        yield problem(
            "data.train_batch_size", batch,
            f"data.train_files holds {rows} {how}, fewer than one batch, so verl would run 0 steps per epoch",
            f"give at least {batch} training rows or set data.train_batch_size to at most {max(rows, 1)}",
        )


def _check_batches(config: DictConfig) -> Iterable[str]:
    batch = int(config.data.train_batch_size)
    mini = int(config.actor_rollout_ref.actor.ppo_mini_batch_size)
    if mini < 1 or batch % mini:
        # verl checks this only without dynamic batching; its v1 trainer would instead pad every batch with
        # zero-reward copies up to a multiple of the mini-batch
        yield problem(
            "actor_rollout_ref.actor.ppo_mini_batch_size", mini,
            f"data.train_batch_size={batch} is not a whole number of mini-batches, so verl's v1 trainer would pad "
            "each batch with zero-reward copies of a trajectory",
            f"use a divisor of {batch} (the reference: 32 of 128)",
        )


def _check_algorithm(config: DictConfig) -> Iterable[str]:
    from verl.utils.config import omega_conf_to_dataclass

    algorithm = config.algorithm
    # Instantiate what the recipe declares, as verl's trainer will: this runs the dataclasses' own range
    # checks (__post_init__), which verl 0.9.1 never triggers before the workers start. The whole section is
    # instantiated last, and only if its parts passed (it would repeat their errors).
    parts_ok = True
    for key in ("algorithm.ema_grpo", "algorithm.online_filter", "algorithm"):
        section = OmegaConf.select(config, key)
        if section is None or "_target_" not in section or (key == "algorithm" and not parts_ok):
            continue
        try:
            omega_conf_to_dataclass(section)
        except Exception as error:  # Hydra wraps the dataclass's ValueError, whose text names key and value
            parts_ok = False
            cause = error.__cause__ or error
            if key == "algorithm":  # e.g. an unknown key: verl's trainer would fail on it the same way
                yield problem(key, section._target_, str(cause).replace("\n", " "), "correct or remove that setting")
            elif str(cause).startswith(key + "."):  # the dataclass's own range check names key and value
                yield f"{PREFIX}: {cause}"
            else:  # e.g. a value of the wrong type
                values = {k: v for k, v in OmegaConf.to_container(section).items() if k != "_target_"}
                yield problem(key, values, str(cause), "see the key's type and range in the README")

    band = algorithm.get("online_filter", None)
    band_on = band is not None and bool(band.get("enable", False))
    estimator = algorithm.get("adv_estimator", None)
    n = int(config.actor_rollout_ref.rollout.n)
    if n < 2 and (estimator in GROUP_ESTIMATORS or band_on):
        needs = f"algorithm.adv_estimator={estimator}" if estimator in GROUP_ESTIMATORS else "the online filter"
        yield problem(
            "actor_rollout_ref.rollout.n", n,
            f"{needs} compares the responses to one prompt, and a group of one has nothing to compare",
            "set actor_rollout_ref.rollout.n to 2 or more (the reference: 8)",
        )
    if not band_on:
        return
    if not bool(config.trainer.get("use_v1", True)):
        yield problem(
            "trainer.use_v1", config.trainer.use_v1,
            "the OneThinker online filter runs in verl's v1 trainer; the legacy trainer has no group filtering",
            "set trainer.use_v1=true (verl's default) or algorithm.online_filter.enable=false",
        )
    filter_groups = algorithm.get("filter_groups", None)
    if filter_groups is None or not bool(filter_groups.get("enable", False)):
        yield problem(
            "algorithm.filter_groups.enable", None if filter_groups is None else filter_groups.get("enable"),
            "algorithm.online_filter.enable=true needs verl's group filtering on, which refills dropped groups",
            "set algorithm.filter_groups.enable=true (with metric=accuracy) or algorithm.online_filter.enable=false",
        )


def ray_cluster_address(config: DictConfig) -> str | None:
    """The Ray cluster main_ppo will join: ``ray_kwargs.ray_init.address`` or ``RAY_ADDRESS``; None when verl
    would start a local Ray instance on this machine."""
    address = OmegaConf.select(config, "ray_kwargs.ray_init.address", default=None)
    return str(address) if address else os.environ.get("RAY_ADDRESS") or None


def local_accelerator_count(device: str) -> int:
    """Accelerators of ``device`` kind (``cuda`` / ``npu``) this process can see (``CUDA_VISIBLE_DEVICES``
    applies), as the local Ray instance would count them."""
    import torch

    if device == "npu":
        npu = getattr(torch, "npu", None)
        return int(npu.device_count()) if npu is not None and npu.is_available() else 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


# What Ray appends to its temporary folder for its longest socket, with the longest Linux process id:
# "/session_<YYYY-MM-DD_HH-MM-SS_ffffff>_<pid>/sockets/plasma_store".
RAY_SOCKET_SUFFIX_BYTES = len("/session_2026-12-03_07-50-09_327623_4194304/sockets/plasma_store")
UNIX_SOCKET_PATH_BYTES = 107  # sun_path holds 108 bytes with its terminating NUL


def _check_ray_temp_dir(config: DictConfig) -> Iterable[str]:
    """Ray refuses (with a traceback, after the config is printed) a temporary folder whose socket paths would
    not fit a Unix socket address."""
    temp_dir = OmegaConf.select(config, "ray_kwargs.ray_init._temp_dir", default=None)
    if not temp_dir:
        return
    longest = len(os.fsencode(os.path.abspath(os.path.expanduser(str(temp_dir))))) + RAY_SOCKET_SUFFIX_BYTES
    if longest > UNIX_SOCKET_PATH_BYTES:
        yield problem(
            "ray_kwargs.ray_init._temp_dir", temp_dir,
            f"Ray's socket paths under it would be up to {longest} bytes, over the {UNIX_SOCKET_PATH_BYTES} a Unix "
            "socket address holds",
            f"give a folder of at most {UNIX_SOCKET_PATH_BYTES - RAY_SOCKET_SUFFIX_BYTES} bytes (e.g. under /tmp)",
        )


def check_machine(config: DictConfig) -> Iterable[str]:
    """Refuse a Ray temporary folder too long for Ray's sockets, and a run that asks for more GPUs than this
    machine has when no Ray cluster is given.

    For the latter verl would start a local Ray instance and wait forever for the workers' placement groups.
    That check is skipped with ``trainer.device=cpu`` (CPU mode, ``+recipe=onethinker_cpu``) and when a Ray
    cluster is given.
    """
    yield from _check_ray_temp_dir(config)
    device = str(config.trainer.get("device", "cuda"))
    if device == "cpu" or ray_cluster_address(config) is not None:
        return
    nnodes, per_node = int(config.trainer.nnodes), int(config.trainer.n_gpus_per_node)
    wanted, present = nnodes * per_node, local_accelerator_count(device)
    if wanted > present:
        kind = "NPUs" if device == "npu" else "GPUs"
        yield (
            f"{PREFIX}: trainer.nnodes={nnodes}, trainer.n_gpus_per_node={per_node}: the run asks for {wanted} "
            f"{kind} and no Ray cluster is given (ray_kwargs.ray_init.address and RAY_ADDRESS unset), so verl would "
            f"start Ray on this machine, which has {present} {kind}, and wait for them forever; lower "
            f"trainer.nnodes / trainer.n_gpus_per_node to fit, give +ray_kwargs.ray_init.address=<cluster> for a "
            f"cluster, or use +recipe=onethinker_cpu on a machine without GPUs"
        )


def check_config(config: DictConfig) -> None:
    """Refuse a configuration that cannot work; warn (logging) about a run that never saves a checkpoint.

    Raises:
        StartupCheckError: one line per refused setting (see the module docstring for the format).
    """
    if int(config.trainer.save_freq) <= 0:
        logger.warning(
            "%s: trainer.save_freq=%s: this run will never save a checkpoint, so it cannot be resumed and leaves "
            "no trained weights; set trainer.save_freq > 0 (the reference: 100)", PREFIX, config.trainer.save_freq,
        )
    problems = [*_check_algorithm(config), *_check_batches(config), *_check_data(config)]
    if problems:
        raise StartupCheckError(problems)


class StartupCheck(Callback):
    """Hydra callback (``hydra.callbacks``) that runs :func:`check_config` and :func:`check_machine` before the
    task function.

    A refused configuration ends the process with status 1 and the refusal lines on stderr, before verl's
    ``main`` runs (so before ``ray.init``).
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from onethinker_verl.recipe_entry import RL, entry_point_problem

        wrong_trainer = entry_point_problem(RL)  # e.g. this recipe given to verl's SFT trainer
        if wrong_trainer is not None:
            raise SystemExit(f"{PREFIX}: {wrong_trainer}")
        problems = []
        try:
            check_config(config)
        except StartupCheckError as error:
            problems = error.problems
        # here rather than in check_config: the dry run and tests check configurations with a tokenizer folder
        model_key = "actor_rollout_ref.model.path"
        problems += model_path_problems(model_key, OmegaConf.select(config, model_key))
        problems += check_machine(config)
        if problems:
            raise SystemExit("\n".join(problems))


def model_path_problems(key: str, path: Any) -> list[str]:
    """The refusal line of a model path set at ``key`` that cannot be a Qwen-VL policy
    (:func:`onethinker_verl.model_folder.check_model_folder`); empty when it can. The RL and SFT checks share it."""
    from onethinker_verl.model_folder import ModelFolderError, check_model_folder

    try:
        check_model_folder(path, key)
    except ModelFolderError as error:
        return [f"{PREFIX}: {error}"]
    return []
