"""The start-up check: ``python -m verl.trainer.main_ppo +recipe=...`` refuses a configuration that cannot
work in the driver, before verl validates, starts Ray or prints the config, with one line per refused key.

The three ``main_ppo`` launches (each imports verl: about 10 s of CPU) start together when the first test
that needs them runs and cover every refusal between them; the in-process tests cover the pieces.
"""

import json
import logging
import os
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from conftest import compose_recipe
from onethinker_verl.advantage.config import EmaGrpoConfig, OnlineFilterConfig
from onethinker_verl.resolvers import bundled_sample_path
from onethinker_verl import startup_check
from onethinker_verl.startup_check import StartupCheckError, check_config, check_machine, count_file_rows

PREFIX = "onethinker-verl start-up check: "
SAMPLE = bundled_sample_path()
SAMPLE_ROWS = 22  # rows of the bundled rl_train.jsonl, all with their media present
LAUNCH_TIMEOUT_S = 300
REFUSAL_CPU_SECONDS = 30  # measured about 9 s of CPU (wall time on an idle 2-core machine), mostly `import verl`
SAMPLE_DATA = (f"data.train_files={SAMPLE}/rl_train.jsonl", f"data.media_root={SAMPLE}")
# the main recipe asks for 4 nodes x 8 GPUs; a launch on a machine with fewer and no Ray cluster is refused
GPU_REFUSAL = "trainer.nnodes=4, trainer.n_gpus_per_node=8: the run asks for 32 GPUs and no Ray cluster is given"


def _machine_refusals() -> list[str]:
    import torch

    return [GPU_REFUSAL] if torch.cuda.device_count() < 32 else []


def _tiny_parquet(path, rows: int) -> str:
    pq.write_table(pa.table({"prompt": [f"q{i}" for i in range(rows)]}), path)
    return str(path)


def _launches(tmp_path) -> dict:
    """name -> (overrides, refusal lines that must appear)."""
    tiny = _tiny_parquet(tmp_path / "tiny.parquet", 3)
    return {
        "no_data": ((), ["data.train_files=(not set): the recipe has no default corpus"]),
        "bad_band_legacy_trainer_small_corpus": (
            (*SAMPLE_DATA, "algorithm.ema_grpo.min_std=0", "algorithm.online_filter.low=0.6",
             "algorithm.online_filter.high=0.4", "trainer.use_v1=false", "trainer.save_freq=-1"),
            ["algorithm.ema_grpo.min_std=0:", "algorithm.online_filter.low=0.6: the band keeps groups",
             "trainer.use_v1=False: the OneThinker online filter runs in verl's v1 trainer",
             f"data.train_batch_size=128: data.train_files holds {SAMPLE_ROWS} usable rows by OneThinkerDataset"],
        ),
        "band_outside_unit_decay_one_group_of_one": (
            # verl's own dataset class: rows counted from the parquet metadata
            (f"data.train_files={tiny}", "data.custom_cls.path=null", "algorithm.online_filter.high=1.5",
             "algorithm.ema_grpo.decay=1.0", "actor_rollout_ref.rollout.n=1",
             "actor_rollout_ref.actor.ppo_mini_batch_size=48"),
            ["algorithm.online_filter.high=1.5: the band bounds a mean accuracy", "algorithm.ema_grpo.decay=1.0:",
             "actor_rollout_ref.rollout.n=1: algorithm.adv_estimator=ema_grpo compares the responses",
             "actor_rollout_ref.actor.ppo_mini_batch_size=48: data.train_batch_size=128 is not a whole number",
             "data.train_batch_size=128: data.train_files holds 3 rows in the files (an upper bound"],
        ),
    }


def _wait_with_usage(process: subprocess.Popen, deadline: float):
    """Exit code and CPU seconds (user + system) of ``process``, killing it at ``deadline``."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def refused_launches(tmp_path_factory):
    """Every launch of main_ppo, started together, each in its own empty working directory."""
    base = tmp_path_factory.mktemp("startup_check")
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    env.pop("RAY_ADDRESS", None)
    running = {}
    for name, (overrides, expected) in _launches(base).items():
        cwd = base / name
        cwd.mkdir()
        argv = [sys.executable, "-m", "verl.trainer.main_ppo", "+recipe=onethinker", *overrides]
        with open(cwd / "stdout.txt", "w") as stdout, open(cwd / "stderr.txt", "w") as stderr:
            process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        running[name] = (process, time.monotonic(), cwd, [*expected, *_machine_refusals()])
    done = {}
    for name, (process, started, cwd, expected) in running.items():
        rc, cpu_seconds = _wait_with_usage(process, started + LAUNCH_TIMEOUT_S)
        done[name] = dict(rc=rc, seconds=time.monotonic() - started, cpu_seconds=cpu_seconds, expected=expected,
                          stdout=(cwd / "stdout.txt").read_text(), stderr=(cwd / "stderr.txt").read_text())
    return done


@pytest.mark.parametrize("name", ["no_data", "bad_band_legacy_trainer_small_corpus",
                                  "band_outside_unit_decay_one_group_of_one"])
def test_main_ppo_refuses_before_ray_with_one_line_per_key(refused_launches, name):
    launch = refused_launches[name]
    shown = f"stdout:\n{launch['stdout'][-3000:]}\nstderr:\n{launch['stderr'][-3000:]}"
    assert launch["rc"] == 1, shown
    refusals = [line for line in launch["stderr"].splitlines() if line.startswith(PREFIX)]
    for expected in launch["expected"]:
        assert any(line.startswith(PREFIX + expected) for line in refusals), (expected, shown)
    assert len(refusals) == len(launch["expected"]), shown  # nothing else refused
    assert all(line.count(": ") >= 2 and "; " in line for line in refusals)  # <key>=<value>: <why>; <fix>
    # Refused before verl's own validation, Ray and the printed config, and within seconds.
    for sign in ("[validate_config]", "ray init kwargs", "Started a local Ray instance", "Traceback"):
        assert sign not in launch["stdout"] + launch["stderr"], (sign, shown)
    # CPU time, not wall time: the launches share the cores with each other and with anything else running
    assert launch["cpu_seconds"] < REFUSAL_CPU_SECONDS, (launch["cpu_seconds"], launch["seconds"])


def test_a_run_that_never_saves_is_warned_about(refused_launches):
    launch = refused_launches["bad_band_legacy_trainer_small_corpus"]
    assert "trainer.save_freq=-1: this run will never save a checkpoint" in launch["stdout"] + launch["stderr"]


def test_warning_alone_does_not_refuse(caplog):
    config = compose_recipe(*SAMPLE_DATA, "data.train_batch_size=8", "actor_rollout_ref.actor.ppo_mini_batch_size=8",
                            "trainer.save_freq=0")
    with caplog.at_level(logging.WARNING, logger="onethinker_verl.startup_check"):
        check_config(config)
    assert [r.getMessage() for r in caplog.records if "trainer.save_freq=0" in r.getMessage()]


def test_workable_main_recipe_passes_at_the_reference_batch(tmp_path):
    """128 rows of the reference batch: nothing refused (the check counts, it does not forbid)."""
    rows = [json.loads(line) for line in open(f"{SAMPLE}/rl_train.jsonl", encoding="utf-8")]
    corpus = tmp_path / "train.jsonl"
    corpus.write_text("".join(json.dumps(rows[i % len(rows)]) + "\n" for i in range(128)), encoding="utf-8")
    check_config(compose_recipe(f"data.train_files={corpus}", f"data.media_root={SAMPLE}",
                                f"+data.cache_dir={tmp_path / 'cache'}"))


def test_online_filter_without_refilling_is_refused():
    config = compose_recipe(*SAMPLE_DATA, "algorithm.filter_groups.enable=false", "data.train_batch_size=8",
                            "actor_rollout_ref.actor.ppo_mini_batch_size=8")
    with pytest.raises(StartupCheckError) as refused:
        check_config(config)
    assert refused.value.problems == [
        PREFIX + "algorithm.filter_groups.enable=False: algorithm.online_filter.enable=true needs verl's group "
        "filtering on, which refills dropped groups; set algorithm.filter_groups.enable=true (with metric=accuracy) "
        "or algorithm.online_filter.enable=false"
    ]


def test_missing_file_and_missing_media_are_refused_with_the_key(tmp_path):
    with pytest.raises(StartupCheckError, match=r"data.train_files=\S*nope.parquet: no such file"):
        check_config(compose_recipe(f"data.train_files={tmp_path / 'nope.parquet'}"))
    with pytest.raises(StartupCheckError, match=r"data.val_files=\S*nope.parquet: no such file"):
        check_config(compose_recipe(*SAMPLE_DATA, f"data.val_files={tmp_path / 'nope.parquet'}",
                                    "data.train_batch_size=8", "actor_rollout_ref.actor.ppo_mini_batch_size=8"))
    # the dataset's own refusal (media_root not given, so the sample's relative media paths do not exist)
    with pytest.raises(StartupCheckError, match="point at missing media"):
        check_config(compose_recipe(f"data.train_files={SAMPLE}/rl_train.jsonl", f"+data.cache_dir={tmp_path}"))


@pytest.mark.parametrize(
    "section, values, key",
    [
        (EmaGrpoConfig, {"decay": -0.1}, "algorithm.ema_grpo.decay=-0.1"),
        (EmaGrpoConfig, {"decay": 1.0}, "algorithm.ema_grpo.decay=1.0"),
        (EmaGrpoConfig, {"decay": float("nan")}, "algorithm.ema_grpo.decay=nan"),
        (EmaGrpoConfig, {"min_std": 0.0}, "algorithm.ema_grpo.min_std=0.0"),
        (EmaGrpoConfig, {"eps": -1e-9}, "algorithm.ema_grpo.eps=-1e-09"),
        (EmaGrpoConfig, {"guard": 0.0}, "algorithm.ema_grpo.guard=0.0"),
        (OnlineFilterConfig, {"low": -0.1}, "algorithm.online_filter.low=-0.1"),
        (OnlineFilterConfig, {"high": 1.01}, "algorithm.online_filter.high=1.01"),
        (OnlineFilterConfig, {"low": 0.5, "high": 0.5}, "algorithm.online_filter.low=0.5"),
    ],
)
def test_dataclasses_refuse_out_of_range_values_naming_the_key(section, values, key):
    with pytest.raises(ValueError, match="^" + key.replace(".", r"\.").replace("+", r"\+") + ": "):
        section(**values)


def test_reference_values_are_in_range():
    EmaGrpoConfig(decay=0.99, min_std=1e-3, eps=1e-6, guard=5.0)
    OnlineFilterConfig(enable=True, low=0.01, high=0.99)
    OnlineFilterConfig(low=0.0, high=1.0)  # the widest band is legal


def test_row_counts_without_loading(tmp_path):
    assert count_file_rows(_tiny_parquet(tmp_path / "a.parquet", 5)) == 5
    (tmp_path / "b.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert count_file_rows(str(tmp_path / "b.jsonl")) == 2
    (tmp_path / "c.json").write_text(json.dumps([{"a": 1}, {"a": 2}, {"a": 3}]), encoding="utf-8")
    assert count_file_rows(str(tmp_path / "c.json")) == 3


def test_recipes_declare_the_check_for_main_ppo():
    """The mechanism the README describes: a Hydra callback declared by the recipe (smoke inherits it)."""
    from onethinker_verl.hydra_root import __file__ as root

    recipe = OmegaConf.load(os.path.join(os.path.dirname(root), "recipe", "onethinker.yaml"))
    assert recipe.hydra.callbacks.onethinker_startup_check._target_ == "onethinker_verl.startup_check.StartupCheck"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("+algorithm.unknown_setting=1", "algorithm=onethinker_verl.advantage.config.OneThinkerAlgoConfig: "),
        ("algorithm.ema_grpo.decay=abc", "algorithm.ema_grpo={'decay': 'abc'"),
    ],
)
def test_what_verls_trainer_would_reject_is_refused_at_start_up(override, expected):
    config = compose_recipe(*SAMPLE_DATA, "data.train_batch_size=8", "actor_rollout_ref.actor.ppo_mini_batch_size=8",
                            override)
    with pytest.raises(StartupCheckError) as refused:
        check_config(config)
    assert len(refused.value.problems) == 1 and refused.value.problems[0].startswith(PREFIX + expected)


WORKABLE = (*SAMPLE_DATA, "data.train_batch_size=8", "actor_rollout_ref.actor.ppo_mini_batch_size=8")


def test_more_gpus_than_the_machine_has_without_a_cluster_is_refused_in_one_line(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(startup_check, "local_accelerator_count", lambda device: 1)  # what this machine has
    refusals = list(check_machine(compose_recipe(*WORKABLE, "trainer.nnodes=2", "trainer.n_gpus_per_node=4")))
    assert len(refusals) == 1 and "\n" not in refusals[0]
    assert refusals[0].startswith(PREFIX + "trainer.nnodes=2, trainer.n_gpus_per_node=4: the run asks for 8 GPUs")
    assert "which has 1 GPUs" in refusals[0] and "+recipe=onethinker_cpu" in refusals[0]
    assert not list(check_machine(compose_recipe(*WORKABLE, "trainer.nnodes=1", "trainer.n_gpus_per_node=1")))


@pytest.mark.parametrize("override, ray_address", [
    ("trainer.device=cpu", None),  # CPU mode asks for no GPU
    ("+ray_kwargs.ray_init.address=10.0.0.1:6379", None),  # a cluster: resource_wait reports what is pending
    (None, "auto"),
])
def test_machine_check_is_skipped_for_cpu_mode_and_for_a_ray_cluster(monkeypatch, override, ray_address):
    monkeypatch.setattr(startup_check, "local_accelerator_count", lambda device: 0)
    if ray_address:
        monkeypatch.setenv("RAY_ADDRESS", ray_address)
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    overrides = [*WORKABLE, *([override] if override else [])]
    assert list(check_machine(compose_recipe(*overrides))) == []



def test_a_ray_temp_dir_too_long_for_rays_sockets_is_refused_in_one_line(monkeypatch):
    from ray._private.utils import validate_socket_filepath

    monkeypatch.setattr(startup_check, "local_accelerator_count", lambda device: 32)  # the recipe's 4 x 8
    limit = startup_check.UNIX_SOCKET_PATH_BYTES - startup_check.RAY_SOCKET_SUFFIX_BYTES
    fits, too_long = "/tmp/" + "r" * (limit - 5), "/tmp/" + "r" * (limit - 4)
    socket = "/session_2026-12-03_07-50-09_327623_4194304/sockets/plasma_store"  # Ray's longest, largest pid
    validate_socket_filepath(fits + socket)  # Ray's own rule accepts the longest folder the check lets through
    with pytest.raises(OSError):
        validate_socket_filepath(too_long + socket)
    assert not list(check_machine(compose_recipe(*WORKABLE, f"+ray_kwargs.ray_init._temp_dir={fits}")))
    refusals = list(check_machine(compose_recipe(*WORKABLE, f"+ray_kwargs.ray_init._temp_dir={too_long}")))
    assert len(refusals) == 1 and "\n" not in refusals[0]
    assert refusals[0].startswith(f"{PREFIX}ray_kwargs.ray_init._temp_dir={too_long}: Ray's socket paths")
    assert f"at most {limit} bytes" in refusals[0]
