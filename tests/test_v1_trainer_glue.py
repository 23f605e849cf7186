"""The glue inside verl's default (v1) trainer, on a real local Ray cluster with TransferQueue.

Trajectories are written to TransferQueue in the layout verl's agent loop writes them (keys
``{uid}_{session}_{index}``, the dataset row's fields such as ``extra_info`` and ``extra_fields`` holding
``reward_extra_info``, tags with ``seq_len``). Generation is replaced by writing finished trajectories
directly. Trainers are built with verl's own ``PPOTrainerSync.__init__`` (which is where the glue is
installed, per trainer, from its config); the methods under test are verl's ``_balance_batch`` (which pads
with ``verl.trainer.ppo.padding_utils``), ``_compute_advantage``, ``_save_checkpoint`` and the replay
buffer's ``sample``. Only the GPU worker group and the tokenizer are stand-ins.

``test_subprocess_stock_grpo_*`` compare a stock GRPO run with the plugin and with
``VERL_USE_EXTERNAL_PLUGINS=none``: two fresh processes, started in the background when this module starts,
attached to this session's Ray cluster and TransferQueue.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import verl  # noqa: F401
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from _spec_ema_grpo import SpecEmaGrpo
from conftest import REPO_ROOT, compose_recipe
from onethinker_verl.advantage import ema_grpo
from onethinker_verl.glue import online_filter as online_filter_glue
from onethinker_verl.online_filter import OnlineFilterExhausted
from test_ema_grpo import canonical_key

PARTITION = "train"
N = 4  # rollouts per prompt


class TrainerWithoutRollout(PPOTrainerSync):
    """verl's sync v1 trainer; refills go to ``self.generation`` instead of a dataloader and rollout."""

    def _add_prompts_to_generate(self, num_prompts):
        return self.generation(num_prompts)


def build_trainer(*overrides, generation=None, dp_size=1):
    """A v1 trainer through verl's own ``__init__`` (which installs the glue), minus its GPU workers."""
    config = compose_recipe(
        "data.train_batch_size=2", f"actor_rollout_ref.rollout.n={N}", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        *overrides,
    )
    trainer = TrainerWithoutRollout(config)
    trainer.generation = generation or (lambda n: n)
    trainer.global_steps = 1
    trainer.actor_rollout_wg = SimpleNamespace(_dispatch_info={"actor": list(range(dp_size))})
    trainer.tokenizer = SimpleNamespace(eos_token_id=0)
    return trainer


@pytest.fixture
def tq(transfer_queue):
    ema_grpo.TASK_MOMENTS.reset()
    ema_grpo.pop_step_metrics()
    return transfer_queue


def put_finished_group(tq, uid, scores, accuracies, problem_type="tracking", data_type="video", status="finished",
                       partition=PARTITION):
    """One prompt group as the agent loop leaves it: a terminal prompt record plus its trajectories."""
    tq.kv_batch_put(keys=[uid], partition_id=partition, tags=[{"is_prompt": True, "status": status, "global_steps": 1}])
    keys, fields, tags = [], [], []
    task = problem_type.replace(" ", "_")
    for session, (score, accuracy) in enumerate(zip(scores, accuracies, strict=True)):
        length = 3 + session % 3
        rm_scores = torch.zeros(length)
        rm_scores[-1] = score
        keys.append(f"{uid}_{session}_0")
        fields.append(
            {
                "uid": uid,
                "response_mask": torch.ones(length, dtype=torch.int64),
                "rm_scores": rm_scores,
                "old_log_probs": torch.zeros(length),
                "extra_info": {"problem_type": problem_type, "data_type": data_type, "index": 0},
                "extra_fields": {"reward_extra_info": {"score": score, "accuracy": accuracy, "task": task}},
            }
        )
        tags.append({"status": "success", "global_steps": 1, "min_global_steps": 1, "max_global_steps": 1,
                     "seq_len": 10 + length})
    if keys:
        tq.kv_batch_put(keys=keys, partition_id=partition, fields=list_of_dict_to_tensordict(fields), tags=tags)
    return keys, tags


def stored_advantages(tq, keys):
    """Per-row advantage tensors as verl wrote them back (nested: one row per trajectory)."""
    return list(tq.kv_batch_get(keys=keys, partition_id=PARTITION, select_fields=["advantages"])["advantages"].unbind(0))


def trainer_built_without_init(*overrides):
    """verl's sync v1 trainer object with only its config, as tools and tests build one to skip __init__ (which
    starts workers): the glue is decided at its first glued call."""
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)
    trainer.config = compose_recipe(
        "data.train_batch_size=2", f"actor_rollout_ref.rollout.n={N}", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        *overrides,
    )
    trainer.global_steps = 1
    return trainer


@pytest.mark.parametrize("built", ["init", "new"])
def test_v1_advantage_step_gets_each_trajectorys_task(tq, built):
    rng = np.random.default_rng(0)
    groups = [
        ("g0", "tracking", "video"),
        ("g1", "tracking", "video"),
        ("g2", "multiple choice", "image"),
        ("g3", "segmentation", "image"),
        ("g4", "segmentation", "video"),
    ]
    spec = SpecEmaGrpo()
    build = build_trainer if built == "init" else trainer_built_without_init
    trainer = build("algorithm.online_filter.enable=false")
    for step in range(2):
        keys, tags, scores, uids, problem_types, data_types = [], [], [], [], [], []
        for name, problem_type, data_type in groups:
            uid = f"s{step}{name}"
            group_scores = rng.uniform(0, 1.5, N).round(3).tolist()
            k, t = put_finished_group(tq, uid, group_scores, [s / 1.5 for s in group_scores], problem_type, data_type)
            keys += k
            tags += t
            scores += group_scores
            uids += [uid] * N
            problem_types += [problem_type] * N
            data_types += [data_type] * N
        metrics = {}
        trainer._compute_advantage(KVBatchMeta(partition_id=PARTITION, keys=keys, tags=tags), metrics)
        got = [row[0].item() for row in stored_advantages(tq, keys)]  # constant over each response
        np.testing.assert_allclose(got, spec.step(scores, uids, problem_types, data_types), atol=1e-5)
        assert metrics["reward/accuracy/tracking"] == pytest.approx(
            np.mean([s / 1.5 for s, p in zip(scores, problem_types) if p == "tracking"])
        )
        assert metrics["reward/count/multiple_choice"] == N
        assert metrics["ema_grpo/moving_std/tracking"] == pytest.approx(ema_grpo.TASK_MOMENTS.std("tracking", 1e-3))
        assert metrics["ema_grpo/singleton_groups"] == 0
        tq.kv_clear(keys=keys, partition_id=PARTITION)
    assert set(ema_grpo.TASK_MOMENTS.keys()) == {
        "tracking", "multiple_choice", "segmentation/image", "segmentation/video"
    }


def test_v1_advantage_step_without_task_fails_loudly(tq):
    keys, tags = put_finished_group(tq, "notask", [0.0, 1.0, 0.5, 1.5], [0, 1, 0, 1], problem_type="")
    with pytest.raises(ValueError, match="has no 'problem_type'"):
        build_trainer()._compute_advantage(KVBatchMeta(partition_id=PARTITION, keys=keys, tags=tags), {})


@pytest.mark.parametrize("surviving", [3, 1], ids=["one-pad-row", "three-pad-rows-and-a-one-sample-group"])
def test_padding_from_verls_batch_balancing_stays_out_of_ema_grpo(tq, surviving):
    """verl's ``_balance_batch`` pads a batch short of failed sessions to the mini-batch multiple (8) with
    ``upsample_batch_to_divisible_size``; the pad rows (task and reward info copied from the first row) get
    advantage 0 and touch neither the moments nor the metrics; a group left with one sample gets 0, counted."""
    trainer = build_trainer("algorithm.online_filter.enable=false")
    full_scores = [0.2, 1.4, 0.9, 0.5]
    keys, tags = put_finished_group(tq, "full", full_scores, [0.1, 0.9, 0.6, 0.3])
    short_scores = [1.1, 0.3, 0.7][:surviving]
    k, t = put_finished_group(tq, "short", short_scores, [0.7, 0.2, 0.5][:surviving], "multiple choice", "image")
    metrics = {}
    batch = trainer._balance_batch(KVBatchMeta(partition_id=PARTITION, keys=keys + k, tags=tags + t), metrics)
    is_padding = [bool(tag.get("is_padding")) for tag in batch.tags]
    assert len(batch) == 8 and sum(is_padding) == 8 - N - surviving
    pad_uids = {key.split("_")[0] for key, pad in zip(batch.keys, is_padding) if pad}
    assert len(pad_uids) == 1 and next(iter(pad_uids)).startswith("pad")

    trainer._compute_advantage(batch, metrics)
    advantages = dict(zip(batch.keys, stored_advantages(tq, batch.keys)))
    for key, pad in zip(batch.keys, is_padding):
        if pad:
            assert torch.count_nonzero(advantages[key]) == 0, key
    spec = SpecEmaGrpo()
    real_keys = keys + k
    expected = spec.step(full_scores + short_scores, ["full"] * N + ["short"] * surviving,
                         ["tracking"] * N + ["multiple choice"] * surviving, ["video"] * N + ["image"] * surviving)
    np.testing.assert_allclose([advantages[key][0].item() for key in real_keys], expected, atol=1e-5)
    moments = ema_grpo.TASK_MOMENTS.state_dict()
    assert moments.keys() == {canonical_key(key) for key in spec.moments}
    for key, (m1, m2) in spec.moments.items():
        assert moments[canonical_key(key)] == pytest.approx([m1, m2], abs=1e-6)  # rewards are stored as float32
    assert metrics["ema_grpo/singleton_groups"] == (1 if surviving == 1 else 0)
    assert metrics["reward/count/tracking"] == N  # the pad rows copy the first row (tracking): not counted
    assert metrics["reward/accuracy/tracking"] == pytest.approx(np.mean([0.1, 0.9, 0.6, 0.3]))
    tq.kv_clear(keys=list(batch.keys), partition_id=PARTITION)


class FakeGeneration:
    """Stands in for rollout: each refilled prompt becomes a finished group with the next accuracies."""

    def __init__(self, tq, accuracy_groups, problem_type="tracking"):
        self.tq, self.pending, self.made, self.requested = tq, list(accuracy_groups), {}, []
        self.problem_type = problem_type

    def __call__(self, num_prompts):
        self.requested.append(num_prompts)
        for _ in range(num_prompts):
            accuracies = self.pending.pop(0) if self.pending else [0.0] * N
            uid = f"refill{len(self.made)}"
            self.made[uid] = accuracies
            put_finished_group(self.tq, uid, accuracies, accuracies, self.problem_type)
        return num_prompts


def test_online_filter_keeps_groups_strictly_inside_the_band(tq):
    generation = FakeGeneration(tq, [[0.5, 0.5, 1.0, 0.0], [0.25, 0.0, 0.0, 0.0]] + [[1.0] * N] * 4)
    trainer = build_trainer(generation=generation)
    # Neither group below is constant, so verl's own rule (drop groups with identical metric) would keep both.
    groups = {
        "almostwrong": ([0.0, 0.0, 0.0, 0.02], "ocr"),  # mean 0.005 <= 0.01: dropped low
        "almostright": ([1.0, 1.0, 1.0, 0.97], "ocr"),  # mean 0.9925 >= 0.99: dropped high
        "mixed": ([1.0, 0.0, 0.0, 0.0], "math"),  # mean 0.25: kept
    }
    for uid, (accuracies, task) in groups.items():
        put_finished_group(tq, uid, accuracies, accuracies, task)
    batch, metrics = trainer.replay_buffer.sample(global_steps=1, partition_id=PARTITION, batch_size=2)
    kept = {key.split("_")[0] for key in batch.keys}
    accuracy_of = {uid: acc for uid, (acc, _) in groups.items()} | generation.made
    # One group survives the first pass, so verl refills; which in-band groups it then picks is its choice.
    assert len(kept) == 2
    assert all(0.01 < np.mean(accuracy_of[uid]) < 0.99 for uid in kept), {uid: accuracy_of[uid] for uid in kept}
    dropped_refills = [uid for uid, acc in generation.made.items() if not 0.01 < np.mean(acc) < 0.99]
    assert metrics["online_filter/groups_kept"] == 2
    assert metrics["online_filter/dropped_low"] == 1
    assert metrics["online_filter/dropped_high"] == 1 + len(dropped_refills)
    assert metrics["online_filter/dropped/ocr"] == 2
    assert metrics.get("online_filter/kept/math", 0) == ("mixed" in kept)
    assert sum(value for key, value in metrics.items() if key.startswith("online_filter/kept/")) == 2
    # One generation batch per train_batch_size replaced groups; verl's speculative refills are not charged.
    assert metrics["online_filter/gen_batches_used"] == pytest.approx(1 + (2 + len(dropped_refills)) / 2)
    assert metrics["online_filter/prompts_dispatched"] == sum(generation.requested)
    assert metrics["training/filter_groups/evicted_samples"] == 2 + len(dropped_refills)
    # Reward metrics cover every scored group, kept or dropped: the all-dropped task still shows up.
    assert metrics["reward/count/ocr"] == 2 * N
    assert metrics["reward/accuracy/ocr"] == pytest.approx(np.mean([0.0, 0.0, 0.0, 0.02, 1.0, 1.0, 1.0, 0.97]))
    assert metrics["online_filter/failed_groups"] == 0


def test_online_filter_checks_and_counts_groups_with_failed_sessions(tq):
    generation = FakeGeneration(tq, [[0.5, 0.0, 1.0, 0.0]] * 4)
    trainer = build_trainer(generation=generation)
    put_finished_group(tq, "failedwrong", [0.0, 0.0], [0.0, 0.0], status="failure")  # 2 of 4 sessions failed
    put_finished_group(tq, "failedok", [0.0, 1.0, 1.0], [0.0, 1.0, 1.0], status="failure")
    put_finished_group(tq, "fine", [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0])
    batch, metrics = trainer.replay_buffer.sample(global_steps=1, partition_id=PARTITION, batch_size=2)
    assert {key.split("_")[0] for key in batch.keys} == {"failedok", "fine"}
    assert metrics["online_filter/failed_groups"] == 2
    assert metrics["online_filter/dropped_low"] == 1
    assert generation.requested == []
    tq.kv_clear(keys=list(batch.keys), partition_id=PARTITION)


def test_online_filter_gives_up_after_the_configured_generation_batches(tq):
    """With max_num_gen_batches=3 and batches of 2 groups, the reference classifies 3 x 2 groups before
    giving up; verl's buffer dispatches two refills per dropped group, which must not shrink the budget."""
    generation = FakeGeneration(tq, [])  # every refilled group is all wrong
    trainer = build_trainer("algorithm.filter_groups.max_num_gen_batches=3", generation=generation)
    put_finished_group(tq, "bad1", [0.0] * N, [0.0] * N)
    put_finished_group(tq, "bad2", [1.0] * N, [1.0] * N)
    with pytest.raises(OnlineFilterExhausted, match="max_num_gen_batches=3"):
        trainer.replay_buffer.sample(global_steps=1, partition_id=PARTITION, batch_size=2)
    assert 2 + len(generation.made) == 3 * 2


VERL_BUDGET_IGNORED = "is ignored by the built-in V1 ReplayBuffer"


def test_enforced_generation_batch_budget_is_a_warning_once_and_verls_contrary_line_is_not_printed(
    caplog, monkeypatch
):
    monkeypatch.setattr(online_filter_glue, "_budget_announced", False)  # a fresh process
    with caplog.at_level(logging.INFO):
        build_trainer("algorithm.filter_groups.max_num_gen_batches=7")
        build_trainer("algorithm.filter_groups.max_num_gen_batches=7")  # same process: said once
    budget_lines = [(record.levelno, record.getMessage()) for record in caplog.records
                    if "max_num_gen_batches=7" in record.getMessage()]
    assert len(budget_lines) == 1, budget_lines
    level, message = budget_lines[0]
    assert level == logging.WARNING and "is enforced by the onethinker online filter" in message
    assert "within 7 generation batches fails" in message


def test_verls_budget_line_stays_without_the_online_filter_and_other_verl_records_pass(caplog):
    with caplog.at_level(logging.INFO):
        build_trainer("algorithm.online_filter.enable=false", "algorithm.filter_groups.max_num_gen_batches=7")
    assert any(VERL_BUDGET_IGNORED in record.getMessage() for record in caplog.records)
    verl_logger = logging.getLogger(online_filter_glue.VERL_TRAINER_LOGGER)
    filters_before = list(verl_logger.filters)
    caplog.clear()
    with caplog.at_level(logging.INFO), online_filter_glue.verl_budget_warning_withheld():
        verl_logger.warning(online_filter_glue.VERL_BUDGET_IGNORED_MESSAGE + "; more", 3)
        verl_logger.warning("algorithm.filter_groups.max_inflight_gen_batches=%s is large", 3)
        verl_logger.info("Resuming from %s", "somewhere")
    assert [record.getMessage() for record in caplog.records] == [
        "algorithm.filter_groups.max_inflight_gen_batches=3 is large",
        "Resuming from somewhere",
    ]
    assert verl_logger.filters == filters_before, "the filter is scoped to the replay buffer's construction"


def test_online_filter_needs_verls_group_filtering_on():
    with pytest.raises(ValueError, match="needs algorithm.filter_groups.enable=true"):
        build_trainer("algorithm.filter_groups.enable=false")


def test_model_scores_are_normalised_per_group_before_the_advantage_step(tq):
    """model_scoring.normalize_by_group: z-score then min-max within each group, overall recomputed."""
    from onethinker_verl.reward.model_scoring import MODEL_SCORE_KEY

    raw_model_scores = [-3.0, -1.0, -2.0, -1.0]
    keys, tags = put_finished_group(tq, "open", [0.0] * 4, [0.2] * 4, problem_type="open-ended", data_type="image")
    # the manager's reward_extra_info of model-scored, well-formatted open-ended answers
    fields = [
        {"extra_fields": {"reward_extra_info": {
            "score": 0.0, "accuracy": 0.2, "format": 1.0, "structure": 0.5, "task": "open_ended", MODEL_SCORE_KEY: m,
        }}}
        for m in raw_model_scores
    ]
    tq.kv_batch_put(keys=keys, partition_id=PARTITION, fields=list_of_dict_to_tensordict(fields))
    trainer = build_trainer(
        "algorithm.adv_estimator=grpo",
        "algorithm.online_filter.enable=false",
        "reward.reward_manager.model_scoring.enable=true",
        "reward.reward_manager.model_scoring.normalize_by_group=true",
    )
    metrics = {}
    trainer._compute_advantage(KVBatchMeta(partition_id=PARTITION, keys=keys, tags=tags), metrics)
    mean = np.mean(raw_model_scores)
    z = (np.array(raw_model_scores) - mean) / np.std(raw_model_scores)
    accuracy = (z - z.min()) / (z.max() - z.min())  # [0, 1, 0.5, 1]
    expected_scores = 0.9 * accuracy + 0.1 * 1.0 + 0.5
    rm_scores = tq.kv_batch_get(keys=keys, partition_id=PARTITION, select_fields=["rm_scores"])["rm_scores"]
    np.testing.assert_allclose([row.sum().item() for row in rm_scores.unbind(0)], expected_scores, atol=1e-6)
    assert metrics["reward/accuracy/open_ended"] == pytest.approx(accuracy.mean())
    got = np.array([row[0].item() for row in stored_advantages(tq, keys)])
    np.testing.assert_allclose(got, (expected_scores - expected_scores.mean()) / (expected_scores.std(ddof=1) + 1e-6), atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# A stock GRPO run with the plugin installed is verl's own
# ---------------------------------------------------------------------------------------------------

# argv: Ray address, partition. Builds a stock GRPO v1 trainer (verl's config, no recipe, verl's naive reward
# manager), samples a batch of two groups (one short of a failed session) whose reward extra info comes from
# a third-party reward function (a `task` key beside free text), pads it with verl's batch balancing, runs
# the advantage step and saves a checkpoint; prints advantages, metrics, TransferQueue reads, files.
STOCK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, tempfile
    from types import SimpleNamespace
    sys.path.insert(0, {tests!r})
    import ray, torch
    import transfer_queue as tq
    import verl
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.checkpoint_callback import CheckpointCallback
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    address, partition = sys.argv[1], sys.argv[2]
    ray.init(address=address, log_to_driver=False)
    tq.init()
    checkpoints = tempfile.mkdtemp()
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=[
            "algorithm.adv_estimator=grpo", "data.train_batch_size=2", "actor_rollout_ref.rollout.n=4",
            "actor_rollout_ref.actor.ppo_mini_batch_size=2", "trainer.default_local_dir=" + checkpoints])
    trainer = PPOTrainerSync(config)
    trainer.global_steps = 1
    trainer.actor_rollout_wg = SimpleNamespace(_dispatch_info={{"actor": [0]}}, save_checkpoint=lambda *a, **k: None)
    trainer.tokenizer = SimpleNamespace(eos_token_id=0)
    trainer.train_dataloader = SimpleNamespace(state_dict=dict)
    for uid, scores in (("a", [0.0, 1.0, 0.5, 1.0]), ("b", [1.0, 0.0, 0.25])):
        tq.kv_batch_put(keys=[uid], partition_id=partition, tags=[{{"is_prompt": True, "status": "finished", "global_steps": 1}}])
        keys = [f"{{uid}}_{{i}}_0" for i in range(len(scores))]
        fields = [dict(uid=uid, response_mask=torch.ones(3 + i, dtype=torch.int64),
                       rm_scores=torch.tensor([0.0] * (2 + i) + [s]), old_log_probs=torch.zeros(3 + i),
                       extra_info={{"problem_type": "tracking"}},
                       extra_fields={{"reward_extra_info": {{"task": "geometry", "note": "free text", "acc": s}}}})
                  for i, s in enumerate(scores)]
        tags = [dict(status="success", global_steps=1, min_global_steps=1, max_global_steps=1, seq_len=10 + i)
                for i in range(len(scores))]
        tq.kv_batch_put(keys=keys, partition_id=partition, fields=list_of_dict_to_tensordict(fields), tags=tags)
    metrics = {{}}
    batch, sample_metrics = trainer.replay_buffer.sample(global_steps=1, partition_id=partition, batch_size=2)
    metrics.update(sample_metrics)
    batch = trainer._balance_batch(batch, metrics)
    reads = []
    kv_batch_get = tq.kv_batch_get
    tq.kv_batch_get = lambda *a, **k: reads.append(k.get("select_fields")) or kv_batch_get(*a, **k)
    trainer._compute_advantage(batch, metrics)
    tq.kv_batch_get = kv_batch_get
    advantages = tq.kv_batch_get(keys=batch.keys, partition_id=partition, select_fields=["advantages"])["advantages"]
    trainer._save_checkpoint()
    tq.kv_clear(keys=list(batch.keys), partition_id=partition)
    print("STOCK-RESULT " + json.dumps({{
        "keys": [key if not key.startswith("pad") else "pad" for key in batch.keys],
        "advantages": [row.tolist() for row in advantages.unbind(0)],
        "metrics": {{key: float(value) for key, value in metrics.items()}},
        "advantage_step_reads": reads,
        "trainer_attributes": sorted(vars(trainer)),
        "checkpoint_files": sorted(os.listdir(os.path.join(checkpoints, "global_step_1"))),
        "onethinker_modules": sorted(m for m in sys.modules if m.startswith("onethinker_verl")),
    }}))
    """
)


@pytest.fixture(scope="module", autouse=True)
def stock_run_processes(ray_transfer_queue, tmp_path_factory):
    """The stock run in two fresh processes, with the plugin (verl's default) and with plugins off; started
    when this module starts, so they run while the other tests do."""
    import ray

    address = ray.get_runtime_context().gcs_address
    script = STOCK_SCRIPT.format(tests=str(REPO_ROOT / "tests"))
    processes = {}
    for plugins in ("auto", "none"):
        env = {key: value for key, value in os.environ.items() if key != "VERL_USE_EXTERNAL_PLUGINS"}
        if plugins == "none":
            env["VERL_USE_EXTERNAL_PLUGINS"] = "none"
        processes[plugins] = subprocess.Popen(
            [sys.executable, "-c", script, address, f"stock_{plugins}"], env=env, cwd=tmp_path_factory.mktemp("stock"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stock_runs(stock_run_processes):
    results = {}
    for plugins, process in stock_run_processes.items():
        out, err = process.communicate(timeout=300)
        lines = [line for line in out.splitlines() if line.startswith("STOCK-RESULT ")]
        assert process.returncode == 0 and len(lines) == 1, f"{plugins}: rc={process.returncode}\n{err[-3000:]}"
        results[plugins] = json.loads(lines[0][len("STOCK-RESULT "):])
    return results


def test_subprocess_stock_grpo_is_bit_identical_with_and_without_the_plugin(stock_runs):
    with_plugin, without = stock_runs["auto"], stock_runs["none"]
    # the plugin did load (Hydra's search-path plugin imports onethinker_verl.hydra_root either way)
    assert "onethinker_verl.plugin" in with_plugin["onethinker_modules"]
    assert "onethinker_verl.plugin" not in without["onethinker_modules"]
    assert with_plugin["keys"] == without["keys"] and "pad" in with_plugin["keys"]
    assert with_plugin["advantages"] == without["advantages"]
    assert with_plugin["metrics"] == without["metrics"]
    assert not any(key.startswith(("reward/", "ema_grpo/", "online_filter/")) for key in with_plugin["metrics"])


def test_subprocess_stock_grpo_runs_none_of_the_glue(stock_runs):
    with_plugin, without = stock_runs["auto"], stock_runs["none"]
    assert with_plugin["advantage_step_reads"] == without["advantage_step_reads"]  # no extra TransferQueue read
    assert with_plugin["trainer_attributes"] == without["trainer_attributes"]  # no per-trainer wrapper
    assert with_plugin["checkpoint_files"] == without["checkpoint_files"] == ["data.pt"]  # no EMA file
