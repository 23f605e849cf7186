"""Foundation: verl loads the plugin by itself, the recipe composes through verl's own entry point and
Hydra, every reference setting of the spec is in the recipe, and the wheel carries what an install needs.

Everything runs verl for real. The tests named ``test_subprocess_*`` are SLOW: each needs a fresh
Python process that imports verl (about 15 s of CPU each). To stay within about a minute they are all
started together, in the background, when the module starts (fixture ``children``; only those whose
tests are selected), and each test then waits for its own process. The in-process tests run meanwhile.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, compose_recipe, config_leaves
from omegaconf import OmegaConf

CHILD_TIMEOUT_S = 300

# ---------------------------------------------------------------------------------------------------
# Child processes (started in parallel, awaited by the tests that need them)
# ---------------------------------------------------------------------------------------------------

# Imports verl and nothing of this package; reports, as one JSON line, which onethinker_verl modules
# were loaded before and after ``import verl``, every log record emitted, and what verl's registries
# return for this package's names. argv[1]: "plain", or "break:<module>" to make that module's import
# fail (a ``None`` entry in sys.modules makes ``import`` raise ImportError).
PROBE = r"""
import json, logging, sys

records = []

class Recorder(logging.Handler):
    def emit(self, record):
        records.append({"level": record.levelname, "logger": record.name, "message": record.getMessage()})

logging.basicConfig(level=logging.INFO)
logging.getLogger().addHandler(Recorder())
mode = sys.argv[1]
if mode.startswith("break:"):
    sys.modules[mode.split(":", 1)[1]] = None
ours = lambda: sorted(m for m, mod in sys.modules.items() if m.split(".")[0] == "onethinker_verl" and mod is not None)
result = {"loaded_before_verl": ours()}
import verl
result["loaded_after_verl"] = ours()
result["verl_modules_after_import"] = sorted(m for m in sys.modules if m.split(".")[0] == "verl")
result["records"] = records

from verl.trainer.ppo.core_algos import get_adv_estimator_fn
try:
    result["ema_grpo"] = get_adv_estimator_fn("ema_grpo").__module__
except Exception as exc:
    result["ema_grpo_error"] = repr(exc)

from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
try:
    cls = get_reward_manager_cls("onethinker")
    result["reward_manager"] = cls.__module__
    result["reward_manager_is_base"] = issubclass(cls, RewardManagerBase)
except Exception as exc:
    result["reward_manager_error"] = repr(exc)

import verl.trainer.ppo.v1.trainer_sync  # the trainers: their glue installs on import
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.trainer.ppo.v1.trainer_base import PPOTrainer
result["trainer_inits_wrapped"] = [bool(getattr(c.__init__, "__onethinker_wrapped__", None)) for c in (PPOTrainer, RayPPOTrainer)]
print("PROBE-RESULT " + json.dumps(result))
"""

# Run against the wheel installed with ``pip install --target``, under ``python -S`` (no site: neither
# the venv's editable .pth nor anything else puts the repository on sys.path).
WHEEL_PROBE = r"""
import json, sys
target = sys.argv[1]
result = {"sys_path": sys.path}
import onethinker_verl, hydra_plugins.onethinker_verl_searchpath as search_path_plugin
result["package_file"] = onethinker_verl.__file__
result["search_path_plugin_file"] = search_path_plugin.__file__
import verl
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
result["ema_grpo_file"] = sys.modules[get_adv_estimator_fn("ema_grpo").__module__].__file__
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
result["reward_manager_file"] = sys.modules[get_reward_manager_cls("onethinker").__module__].__file__
from pathlib import Path
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
    cfg = compose(config_name="ppo_trainer", overrides=["+recipe=onethinker_smoke"])
result["adv_estimator"] = cfg.algorithm.adv_estimator
data = OmegaConf.to_container(cfg.data, resolve=True)
result["train_files"] = data["train_files"]
result["media_root"] = data["media_root"]
print("PROBE-RESULT " + json.dumps(result))
"""

CFG_OVERRIDES = ("actor_rollout_ref.rollout.n=4", "algorithm.ema_grpo.decay=0.9", "data.video_fps=1")


@dataclass
class Child:
    argv: list
    cwd: Path
    env: dict
    stdout_path: Path
    stderr_path: Path
    process: subprocess.Popen = None
    started: float = 0.0
    returncode: int = None
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)

    def start(self):
        self.started = time.monotonic()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=err)

    def wait(self):
        if self.returncode is None:
            try:
                self.returncode = self.process.wait(timeout=max(1.0, CHILD_TIMEOUT_S - (time.monotonic() - self.started)))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
            self.stdout = self.stdout_path.read_text(errors="replace")
            self.stderr = self.stderr_path.read_text(errors="replace")
        return self

    def describe(self):
        return f"{self.argv[:4]}... rc={self.returncode}\n--- stdout (tail)\n{self.stdout[-3000:]}\n--- stderr (tail)\n{self.stderr[-3000:]}"

    def probe_result(self):
        self.wait()
        lines = [line for line in self.stdout.splitlines() if line.startswith("PROBE-RESULT ")]
        assert self.returncode == 0 and len(lines) == 1, self.describe()
        return json.loads(lines[0][len("PROBE-RESULT ") :])


def _child_env(**changes):
    env = dict(os.environ)
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)  # verl's default: load every plugin
    env.pop("PYTHONPATH", None)
    env.update(changes)
    return env


def _copy_source_tree(dest: Path) -> Path:
    """The project's sources (not the venv, VCS data or build outputs): the wheel is built from this
    copy, so building leaves no build/ folder in the shared working tree and no stale one gets in."""
    ignored = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "outputs", ".notes")
    shutil.copytree(REPO_ROOT, dest, symlinks=True, ignore=ignored)
    return dest


def _define_children(base: Path) -> dict:
    py = sys.executable
    outside = base / "cwd"  # a working directory outside the repository
    outside.mkdir()

    def child(name, argv, env=None, cwd=outside):
        return Child(argv=argv, cwd=cwd, env=env or _child_env(), stdout_path=base / f"{name}.out", stderr_path=base / f"{name}.err")

    wheel_dir, target = base / "wheel", base / "target"
    wheel_chain = " && ".join(
        [
            "set -e",
            f"{py} -m pip wheel --no-deps --no-cache-dir -q -w {wheel_dir} {base / 'src'}",
            f"{py} -m pip install --no-deps --no-cache-dir -q --target {target} {wheel_dir}/*.whl",
            # -S: no site, so no .pth; the venv's site-packages is given by hand for the dependencies.
            f"PYTHONPATH={target}:{sysconfig.get_paths()['purelib']} {py} -S -c \"$WHEEL_PROBE\" {target}",
        ]
    )
    return {
        "plugin_default": child("plugin_default", [py, "-c", PROBE, "plain"]),
        "plugin_disabled": child("plugin_disabled", [py, "-c", PROBE, "plain"], env=_child_env(VERL_USE_EXTERNAL_PLUGINS="none")),
        "plugin_broken": child("plugin_broken", [py, "-c", PROBE, "break:onethinker_verl.reward.manager"]),
        "cfg_overrides": child(
            "cfg_overrides", [py, "-m", "verl.trainer.main_ppo", "+recipe=onethinker", *CFG_OVERRIDES, "--cfg", "job"]
        ),
        "wheel": child("wheel", ["bash", "-c", wheel_chain], env=_child_env(WHEEL_PROBE=WHEEL_PROBE)),
    }


def uses_children(*names):
    """Declare the background processes a test needs (read by the ``children`` fixture)."""

    def mark(fn):
        fn.children = names
        return fn

    return mark


@pytest.fixture(scope="module")
def children(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("foundation")
    defined = _define_children(base)
    needed = {name for item in request.session.items for name in getattr(getattr(item, "function", None), "children", ())}
    if "wheel" in needed:
        _copy_source_tree(base / "src")
    for name in sorted(needed):
        defined[name].start()
    yield defined
    for child in defined.values():
        if child.process is not None and child.process.poll() is None:
            child.process.kill()
            child.process.wait()


@pytest.fixture(scope="module", autouse=True)
def _start_children_first(children, cfg):
    """Start the background processes before any test runs, then compose in this process meanwhile."""


# ---------------------------------------------------------------------------------------------------
# 1. `import verl` alone loads the plugin (entry point group verl.plugins)
# ---------------------------------------------------------------------------------------------------


def _our_records(result, level):
    return [r for r in result["records"] if r["level"] == level and r["logger"].split(".")[0] == "onethinker_verl"]


def _registered(result):
    """What the plugin's INFO lines say registered, in order."""
    prefix = "onethinker-verl registered with verl: "
    return [r["message"][len(prefix):] for r in _our_records(result, "INFO") if r["message"].startswith(prefix)]


@uses_children("plugin_default", "plugin_disabled")
def test_subprocess_import_verl_alone_registers_every_component_lazily(children):
    result = children["plugin_default"].probe_result()
    assert result["loaded_before_verl"] == []
    # import verl loads the plugin, and nothing of verl beyond what verl imports itself: registration waits
    # until verl imports what a component extends (here: the probe's registry look-ups).
    assert "onethinker_verl.plugin" in result["loaded_after_verl"]
    assert "onethinker_verl.advantage.ema_grpo" not in result["loaded_after_verl"]
    assert result["verl_modules_after_import"] == children["plugin_disabled"].probe_result()["verl_modules_after_import"]
    # Registry entries that only this package adds.
    assert result.get("ema_grpo", "").startswith("onethinker_verl."), result.get("ema_grpo_error")
    assert result.get("reward_manager", "").startswith("onethinker_verl."), result.get("reward_manager_error")
    assert result["reward_manager_is_base"]
    # One INFO line per registration, at the moment it happens; nothing failed.
    registered = _registered(result)
    assert registered[0] == "OmegaConf resolvers 'onethinker_sample', 'onethinker_required'", result["records"]
    assert "advantage estimator 'ema_grpo'" in registered and "reward manager 'onethinker'" in registered
    assert any(r.startswith("v1 trainer glue") for r in registered) and any(r.startswith("legacy trainer glue") for r in registered)
    assert result["trainer_inits_wrapped"] == [True, True]
    assert _our_records(result, "WARNING") == [] and _our_records(result, "ERROR") == []


@uses_children("plugin_disabled")
def test_subprocess_plugins_disabled_means_nothing_registered(children):
    """VERL_USE_EXTERNAL_PLUGINS=none: the registrations come from the entry point, nothing else."""
    result = children["plugin_disabled"].probe_result()
    assert result["loaded_after_verl"] == []
    assert "ema_grpo" not in result and "ema_grpo" in result["ema_grpo_error"]
    assert "reward_manager" not in result and "onethinker" in result["reward_manager_error"]
    assert _our_records(result, "INFO") == []
    assert "onethinker_verl.plugin" not in result["loaded_after_verl"]
    assert result["trainer_inits_wrapped"] == [False, False]


@uses_children("plugin_broken")
def test_subprocess_broken_component_is_loud_and_the_rest_still_registers(children):
    result = children["plugin_broken"].probe_result()
    warnings = [r["message"] for r in _our_records(result, "WARNING")]
    # Logged when verl imports its reward-manager registry (the probe's look-up), naming component and module.
    assert any(
        "reward manager" in w and "onethinker_verl.reward.manager" in w and "verl.experimental.reward_loop" in w
        for w in warnings
    ), result["records"]
    assert result.get("ema_grpo", "").startswith("onethinker_verl."), result.get("ema_grpo_error")
    assert "reward_manager" not in result
    registered = _registered(result)
    assert "advantage estimator 'ema_grpo'" in registered and not any("reward manager" in r for r in registered)


# ---------------------------------------------------------------------------------------------------
# 2. `python -m verl.trainer.main_ppo +recipe=onethinker --cfg job`, outside the repository
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfg():
    return compose_recipe()


def _printed_config(child):
    child.wait()
    assert child.returncode == 0, child.describe()
    config = yaml.safe_load(child.stdout)
    assert isinstance(config, dict), child.describe()
    return config


@uses_children("cfg_overrides")
def test_subprocess_main_ppo_composes_the_recipe_and_takes_overrides(children, cfg):
    """One launch of verl's entry point, with overrides of a verl key and of keys the recipe adds; the
    rest must be exactly the in-process composition (the same Hydra config, printed the same way)."""
    printed = _printed_config(children["cfg_overrides"])
    assert printed["algorithm"]["adv_estimator"] == "ema_grpo"
    assert printed["reward"]["reward_manager"]["name"] == "onethinker"
    assert printed["data"]["custom_cls"]["path"] == "pkg://onethinker_verl.data.dataset"
    assert printed["data"]["custom_cls"]["name"]
    assert printed["actor_rollout_ref"]["rollout"]["n"] == 4  # a key of verl's own config
    assert printed["algorithm"]["ema_grpo"]["decay"] == 0.9  # keys the recipe adds
    assert printed["data"]["video_fps"] == 1

    defaults = yaml.safe_load(OmegaConf.to_yaml(cfg))  # what `--cfg job` prints without the overrides
    assert defaults["actor_rollout_ref"]["rollout"]["n"] == 8
    before, after = config_leaves(defaults), config_leaves(printed)
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"actor_rollout_ref.rollout.n", "algorithm.ema_grpo.decay", "data.video_fps"}


# ---------------------------------------------------------------------------------------------------
# 3. The composed config holds every reference setting and passes verl's own checks
# ---------------------------------------------------------------------------------------------------


def _get(cfg, key):
    return OmegaConf.select(cfg, key, throw_on_missing=True)


# "The reference RL run" of the spec (run_onethinker_rl.sh, config_ema_grpo_64.yaml, EasyR1's defaults),
# in verl 0.9.1 keys. Written from the spec, not read back from the recipe.
REFERENCE = [
    ("advantage estimator EMA-GRPO", {"algorithm.adv_estimator": "ema_grpo", "algorithm.gamma": 1.0, "algorithm.lam": 1.0}),
    ("rollout n 8, temperature 1.0, top_p 1.0", {"actor_rollout_ref.rollout.n": 8, "actor_rollout_ref.rollout.temperature": 1.0, "actor_rollout_ref.rollout.top_p": 1.0, "actor_rollout_ref.rollout.top_k": -1}),
    ("128 prompts per rollout batch", {"data.train_batch_size": 128, "data.gen_batch_size": None}),
    ("32 prompts per policy-update mini-batch", {"actor_rollout_ref.actor.ppo_mini_batch_size": 32}),
    ("micro-batch 1 per GPU, for updates and log-probs", {"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 1, "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 1}),
    ("AdamW (0.9, 0.999), lr 2e-6, weight decay 1e-2, constant", {"actor_rollout_ref.actor.optim.optimizer": "AdamW", "actor_rollout_ref.actor.optim.lr": 2e-6, "actor_rollout_ref.actor.optim.weight_decay": 1e-2, "actor_rollout_ref.actor.optim.betas": [0.9, 0.999], "actor_rollout_ref.actor.optim.lr_scheduler_type": "constant"}),
    ("grad clip 1.0", {"actor_rollout_ref.actor.optim.clip_grad": 1.0}),
    ("no KL loss and no KL in the reward", {"actor_rollout_ref.actor.use_kl_loss": False, "algorithm.use_kl_in_reward": False}),
    ("PPO clip 0.2 below, 0.3 above, dual-clip 3.0", {"actor_rollout_ref.actor.clip_ratio_low": 0.2, "actor_rollout_ref.actor.clip_ratio_high": 0.3, "actor_rollout_ref.actor.clip_ratio_c": 3.0}),
    ("token-mean loss, one PPO epoch, no entropy bonus", {"actor_rollout_ref.actor.loss_agg_mode": "token-mean", "actor_rollout_ref.actor.ppo_epochs": 1, "actor_rollout_ref.actor.entropy_coeff": 0}),
    ("max prompt 16384, max response 4096", {"data.max_prompt_length": 16384, "data.max_response_length": 4096}),
    ("prompts not filtered by length", {"data.filter_overlong_prompts": False}),
    ("online filter: accuracy band (0.01, 0.99), up to 20 tries", {"algorithm.filter_groups.enable": True, "algorithm.filter_groups.metric": "accuracy", "algorithm.filter_groups.max_num_gen_batches": 20, "algorithm.online_filter.enable": True, "algorithm.online_filter.low": 0.01, "algorithm.online_filter.high": 0.99}),
    ("padding-free training with dynamic batching", {"actor_rollout_ref.model.use_remove_padding": True, "actor_rollout_ref.actor.use_dynamic_bsz": True, "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz": True}),
    ("dynamic batching budget: 1 x (16384 + 4096) tokens", {"actor_rollout_ref.actor.ppo_max_token_len_per_gpu": 20480, "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu": 20480}),
    ("gradient checkpointing", {"actor_rollout_ref.model.enable_gradient_checkpointing": True}),
    ("FSDP, no offload", {"actor_rollout_ref.actor.strategy": "fsdp", "actor_rollout_ref.actor.fsdp_config.param_offload": False, "actor_rollout_ref.actor.fsdp_config.optimizer_offload": False}),
    ("rollout vLLM, tensor parallel 4, 0.5 GPU memory", {"actor_rollout_ref.rollout.name": "vllm", "actor_rollout_ref.rollout.tensor_model_parallel_size": 4, "actor_rollout_ref.rollout.gpu_memory_utilization": 0.5}),
    ("vLLM: 20480 batched tokens, no chunked prefill, context prompt + response", {"actor_rollout_ref.rollout.max_num_batched_tokens": 20480, "actor_rollout_ref.rollout.enable_chunked_prefill": False, "actor_rollout_ref.rollout.max_model_len": 20480, "actor_rollout_ref.rollout.enforce_eager": False}),
    ("rollout seed 1", {"actor_rollout_ref.rollout.seed": 1}),
    ("data shuffled with seed 1", {"data.shuffle": True, "data.seed": 1}),
    ("one epoch, the step count of one epoch", {"trainer.total_epochs": 1, "trainer.total_training_steps": None}),
    ("a checkpoint every 100 steps, all kept, resume from the last", {"trainer.save_freq": 100, "trainer.max_actor_ckpt_to_keep": None, "trainer.resume_mode": "auto"}),
    ("no validation before or during training", {"trainer.val_before_train": False, "trainer.test_freq": -1}),
    ("4 nodes x 8 GPUs", {"trainer.nnodes": 4, "trainer.n_gpus_per_node": 8}),
    ("vision tower trained", {"actor_rollout_ref.actor.freeze_vision_tower": False}),
    ("decord retries near a broken video end", {"ray_kwargs.ray_init.runtime_env.env_vars.DECORD_EOF_RETRY_MAX": "2048001"}),
    ("validation: sampled at temperature 0.7, top_p 0.95, n 1", {"actor_rollout_ref.rollout.val_kwargs.do_sample": True, "actor_rollout_ref.rollout.val_kwargs.temperature": 0.7, "actor_rollout_ref.rollout.val_kwargs.top_p": 0.95, "actor_rollout_ref.rollout.val_kwargs.n": 1}),
]


@pytest.mark.parametrize("settings", [s for _, s in REFERENCE], ids=[name for name, _ in REFERENCE])
def test_reference_setting(cfg, settings):
    actual = {key: _get(cfg, key) for key in settings}
    assert actual == settings


def test_reference_without_reference_model(cfg):
    """No KL at all means no reference policy: verl builds one exactly when this returns True."""
    from verl.trainer.ppo.utils import need_reference_policy

    assert need_reference_policy(cfg) is False


def test_reference_no_warmup(cfg):
    optim = cfg.actor_rollout_ref.actor.optim
    # verl warms up for lr_warmup_steps when > 0, else for lr_warmup_steps_ratio * total steps.
    assert optim.lr_warmup_steps <= 0 and optim.lr_warmup_steps_ratio == 0


def test_reference_fsdp_full_sharding(cfg):
    actor = cfg.actor_rollout_ref.actor
    world = cfg.trainer.nnodes * cfg.trainer.n_gpus_per_node
    assert actor.strategy in ("fsdp", "fsdp2")
    assert actor.fsdp_config.fsdp_size in (-1, world)  # -1: shard over every GPU
    assert actor.fsdp_config.reshard_after_forward  # FULL_SHARD, not SHARD_GRAD_OP


def test_dynamic_batching_token_budget_holds_one_full_length_sequence(cfg):
    """With dynamic batching verl packs micro-batches up to a per-GPU token budget and asserts that no
    single sequence is longer (verl.utils.seqlen_balancing); a full-length prompt + response must fit."""
    longest = cfg.data.max_prompt_length + cfg.data.max_response_length
    budgets = {
        key: _get(cfg, key)
        for key in (
            "actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
            "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu",
            "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu",
        )
    }
    too_small = {key: value for key, value in budgets.items() if value < longest}
    assert not too_small, f"per-GPU token budgets below max_prompt_length + max_response_length = {longest}: {too_small}"


@pytest.mark.filterwarnings("ignore:Disabled critic:UserWarning")
def test_main_ppo_validation_accepts_the_recipe(cfg):
    """What `main_ppo` runs before starting anything (includes the actor's dataclass conversion)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    assert not need_reference_policy(cfg) and not need_critic(cfg)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def test_verl_dataclass_conversion_accepts_the_recipe(cfg):
    from verl.trainer.config import AlgoConfig
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import ActorConfig, RolloutConfig

    algorithm = omega_conf_to_dataclass(cfg.algorithm)
    assert isinstance(algorithm, AlgoConfig) and type(algorithm).__module__.startswith("onethinker_verl.")
    assert algorithm.adv_estimator == "ema_grpo"
    assert algorithm.online_filter.enable and (algorithm.online_filter.low, algorithm.online_filter.high) == (0.01, 0.99)
    assert algorithm.filter_groups.max_num_gen_batches == 20
    assert 0 <= algorithm.ema_grpo.decay < 1

    # As verl's engine workers do (verl.workers.engine_workers): the actor and rollout via their _target_.
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    assert isinstance(actor, ActorConfig) and type(actor).__name__ == "FSDPActorConfig"
    assert (actor.optim.lr, actor.ppo_mini_batch_size, actor.use_dynamic_bsz) == (2e-6, 32, True)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert isinstance(rollout, RolloutConfig) and rollout.n == 8
    assert (rollout.val_kwargs.temperature, rollout.val_kwargs.top_p, rollout.val_kwargs.n) == (0.7, 0.95, 1)


def test_reward_manager_resolves_as_verl_resolves_it(cfg):
    """verl 0.9.1 reads `reward` as a DictConfig and resolves the manager class from it.

    (``omega_conf_to_dataclass(cfg.reward)`` cannot be used: verl's own RewardManagerConfig.__post_init__
    calls ``super().__post_init__()``, which BaseConfig lacks, so it fails for verl's default config too.)"""
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    manager = resolve_reward_manager_cls(cfg)
    assert issubclass(manager, RewardManagerBase) and manager.__module__.startswith("onethinker_verl.")


def test_smoke_recipe_data_resolve_to_the_bundled_sample():
    data = OmegaConf.to_container(compose_recipe(recipe="onethinker_smoke").data, resolve=True)
    for key in ("train_files", "val_files", "media_root"):
        paths = data[key] if isinstance(data[key], list) else [data[key]]
        assert paths and all(Path(p).is_absolute() and Path(p).exists() for p in paths), (key, data[key])
    assert Path(data["media_root"]).is_dir()


def test_main_recipe_requires_train_files(cfg):
    """The reference recipe has no default corpus: reading data.train_files (or val_files, which follows it)
    without a value is an error naming the key."""
    from omegaconf.errors import InterpolationResolutionError

    for key in ("train_files", "val_files"):
        with pytest.raises(InterpolationResolutionError, match="Missing mandatory value: data.train_files"):
            OmegaConf.select(cfg.data, key)


# ---------------------------------------------------------------------------------------------------
# 4. The wheel
# ---------------------------------------------------------------------------------------------------


def _tree_files(root: Path, sub: str, suffixes=None):
    base = root / sub
    return {
        str(p.relative_to(root))
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and (suffixes is None or p.suffix in suffixes)
    }


@uses_children("wheel")
def test_subprocess_wheel_contents_and_non_editable_install(children):
    child = children["wheel"]
    result = child.probe_result()
    (wheel_path,) = (child.cwd.parent / "wheel").glob("onethinker_verl-*.whl")
    src = child.cwd.parent / "src"
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        recipe_copies = {n: wheel.read(n) for n in names if n.startswith("onethinker_verl/hydra_root/recipe/")}

    # Every module, data file and template of the source tree is in the wheel.
    expected = (
        _tree_files(src, "onethinker_verl", {".py"})
        | _tree_files(src, "hydra_plugins/onethinker_verl_searchpath", {".py"})
        | _tree_files(src, "onethinker_verl/data/sample")
        | _tree_files(src, "onethinker_verl/data/templates")
    )
    assert "onethinker_verl/data/sample/rl_train.jsonl" in expected
    assert not expected - names, sorted(expected - names)
    # hydra_plugins is a namespace package shared with other plugins: the wheel must not own it.
    assert "hydra_plugins/__init__.py" not in names
    # The recipes are real files in the wheel, identical to the top-level recipes/.
    assert "onethinker_verl/hydra_root/recipe/onethinker.yaml" in recipe_copies
    for recipe in (src / "recipes").glob("*.yaml"):
        assert recipe_copies.get(f"onethinker_verl/hydra_root/recipe/{recipe.name}") == recipe.read_bytes(), recipe.name
    parsed = {}
    section = None
    for line in entry_points.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line:
            name, value = (part.strip() for part in line.split("=", 1))
            parsed.setdefault(section, {})[name] = value
    assert parsed.get("verl.plugins") == {"onethinker": "onethinker_verl.plugin"}

    # Installed from the wheel (not the repository), verl loads it and the recipe composes.
    target = str(child.cwd.parent / "target")
    assert str(REPO_ROOT) not in result["sys_path"]
    for key in ("package_file", "search_path_plugin_file", "ema_grpo_file", "reward_manager_file", "train_files", "media_root"):
        assert result[key].startswith(target + os.sep), (key, result[key])
    assert result["adv_estimator"] == "ema_grpo"
    assert Path(result["train_files"]).is_file()

