"""EMA-GRPO through verl's own compute_advantage, against a literal (loop-based) reading of the spec.

The legacy trainer's glue is installed the way a legacy ``RayPPOTrainer`` built with ``ema_grpo`` installs it
(:func:`onethinker_verl.glue.install.install_onethinker_glue`), so verl's module-level ``compute_advantage``
and ``compute_data_metrics`` are the ones that trainer's ``fit`` calls.
"""

import numpy as np
import pytest
import torch
import verl  # noqa: F401  (loads the plugin, as every verl process does)
from verl import DataProto
from verl.trainer.ppo import ray_trainer
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
from verl.utils.config import omega_conf_to_dataclass

from onethinker_verl.advantage import ema_grpo
from onethinker_verl.advantage.config import OneThinkerAlgoConfig
from onethinker_verl.glue.install import install_onethinker_glue
from onethinker_verl.glue.legacy_fit import legacy_glue_active

from _spec_ema_grpo import SpecEmaGrpo  # the literal reference of the spec
from conftest import compose_recipe

RESPONSE_LEN = 6

TASKS = [
    ("multiple choice", "image", "binary"),
    ("multiple choice", "video", "binary"),
    ("tracking", "video", "wide"),
    ("spatial grounding", "image", "narrow"),
    ("segmentation", "image", "narrow"),
    ("segmentation", "video", "wide"),
    ("segmentation", "Video-Image", "wide"),
    ("OCR", "image", "almost_constant"),
]


def canonical_key(spec_key):
    """The spec's task key (the problem type as given, e.g. "multiple choice", "OCR", "segmentation/image")
    in the plugin's canonical task naming: lower case, spaces and hyphens as underscores."""
    return spec_key.lower().replace(" ", "_").replace("-", "_")


def mixed_batch(rng, step, groups_per_task=3, n=8):
    """A DataProto like the trainer's at the advantage step: token rewards at the last response token."""
    scores, uids, problem_types, data_types = [], [], [], []
    for t, (problem_type, data_type, kind) in enumerate(TASKS):
        for g in range(2 * groups_per_task if kind == "almost_constant" else groups_per_task):
            if kind == "binary":
                group = rng.integers(0, 2, n).astype(float) * 1.5
            elif kind == "wide":
                group = rng.uniform(0.0, 1.5, n)
            elif kind == "narrow":
                group = 0.6 + rng.normal(0, 0.01, n)
            else:  # nearly constant task whose first group has one outlier: trips the guard rail
                group = np.full(n, 1.0)
                if g == 0:
                    group[0] = 0.0
            scores += group.tolist()
            uids += [f"s{step}-t{t}-g{g}"] * n
            problem_types += [problem_type] * n
            data_types += [data_type] * n
    order = rng.permutation(len(scores))  # groups need not be contiguous
    scores = [scores[i] for i in order]
    uids = np.array([uids[i] for i in order], dtype=object)
    extra_info = np.array(
        [{"problem_type": problem_types[i], "data_type": data_types[i], "index": int(i)} for i in order], dtype=object
    )
    batch_size = len(scores)
    lengths = torch.as_tensor(rng.integers(1, RESPONSE_LEN + 1, batch_size))
    response_mask = (torch.arange(RESPONSE_LEN)[None, :] < lengths[:, None]).float()
    token_level_rewards = torch.zeros(batch_size, RESPONSE_LEN)
    token_level_rewards[torch.arange(batch_size), lengths - 1] = torch.tensor(scores, dtype=torch.float32)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_level_rewards, "response_mask": response_mask},
        non_tensors={"uid": uids, "extra_info": extra_info},
    )
    expected_scores = token_level_rewards.sum(-1).double().tolist()
    return data, expected_scores, [problem_types[i] for i in order], [data_types[i] for i in order]


@pytest.fixture(scope="module", autouse=True)
def legacy_trainer_glue():
    """What building a legacy trainer with the recipe (trainer.use_v1=false, no online filter) installs; the
    tests run as inside that trainer's ``fit``, where verl calls the module-level functions used here."""
    trainer = ray_trainer.RayPPOTrainer.__new__(ray_trainer.RayPPOTrainer)
    trainer.config = compose_recipe("trainer.use_v1=false", "algorithm.online_filter.enable=false")
    needs = install_onethinker_glue(trainer)
    assert needs.ema_grpo and needs.onethinker_reward and not needs.online_filter
    assert "fit" in vars(trainer)  # this trainer's fit scopes the module-wide wrappers
    with legacy_glue_active(needs):
        yield trainer


@pytest.fixture(autouse=True)
def fresh_moments():
    ema_grpo.TASK_MOMENTS.reset()
    ema_grpo.pop_step_metrics()
    yield
    ema_grpo.TASK_MOMENTS.reset()


def algorithm_config(*overrides):
    return omega_conf_to_dataclass(compose_recipe(*overrides).algorithm)


def run_steps(config, spec, seed, steps):
    rng = np.random.default_rng(seed)
    worst = 0.0
    for step in range(steps):
        data, scores, problem_types, data_types = mixed_batch(rng, step)
        out = ray_trainer.compute_advantage(data, adv_estimator=config.adv_estimator, config=config)
        expected = spec.step(scores, list(data.non_tensor_batch["uid"]), problem_types, data_types)
        expected_tokens = torch.tensor(expected, dtype=torch.float64)[:, None] * data.batch["response_mask"].double()
        worst = max(worst, (out.batch["advantages"].double() - expected_tokens).abs().max().item())
        assert torch.equal(out.batch["advantages"], out.batch["returns"])
    return worst


def test_registered_estimator_and_recipe_config():
    config = algorithm_config()
    assert isinstance(config, OneThinkerAlgoConfig)
    assert config.adv_estimator == "ema_grpo"
    assert get_adv_estimator_fn("ema_grpo") is ema_grpo.compute_ema_grpo_outcome_advantage
    assert (config.ema_grpo.decay, config.ema_grpo.min_std, config.ema_grpo.eps) == (0.99, 1e-3, 1e-6)
    assert (config.ema_grpo.guard, config.ema_grpo.center) == (5.0, True)


def test_matches_spec_over_multistep_mixed_batches():
    spec = SpecEmaGrpo()
    worst = run_steps(algorithm_config(), spec, seed=0, steps=6)
    assert worst <= 1e-5
    assert spec.fallback_groups > 0, "the batches must exercise the guard rail"
    assert set(ema_grpo.TASK_MOMENTS.keys()) == {canonical_key(key) for key in spec.moments}
    assert {"multiple_choice", "ocr", "spatial_grounding"} <= set(ema_grpo.TASK_MOMENTS.keys())
    for key, (m1, _) in spec.moments.items():
        assert ema_grpo.TASK_MOMENTS.mean(canonical_key(key)) == pytest.approx(m1, abs=1e-12)
    assert {"segmentation/image", "segmentation/video", "segmentation"} <= set(spec.moments)


def test_command_line_hyperparameters_reach_the_estimator():
    overrides = ("algorithm.ema_grpo.decay=0.5", "algorithm.ema_grpo.center=false", "algorithm.ema_grpo.guard=3.0")
    config = algorithm_config(*overrides)
    assert (config.ema_grpo.decay, config.ema_grpo.center, config.ema_grpo.guard) == (0.5, False, 3.0)
    assert run_steps(config, SpecEmaGrpo(decay=0.5, center=False, guard=3.0), seed=1, steps=3) <= 1e-5


def test_works_with_the_dictconfig_the_v1_trainer_passes():
    config = compose_recipe().algorithm  # the v1 trainer hands over the raw DictConfig
    assert run_steps(config, SpecEmaGrpo(), seed=2, steps=2) <= 1e-5


def test_per_task_metrics_reach_verl_step_metrics():
    config = algorithm_config()
    data, *_ = mixed_batch(np.random.default_rng(3), 0)
    data = ray_trainer.compute_advantage(data, adv_estimator="ema_grpo", config=config)
    batch_size = len(data)
    data.batch["token_level_scores"] = data.batch["token_level_rewards"]
    data.batch["prompts"] = torch.ones(batch_size, 3, dtype=torch.long)
    data.batch["responses"] = torch.ones(batch_size, RESPONSE_LEN, dtype=torch.long)
    data.batch["attention_mask"] = torch.cat([torch.ones(batch_size, 3), data.batch["response_mask"]], dim=1)
    metrics = ray_trainer.compute_data_metrics(batch=data, use_critic=False)
    assert "critic/score/mean" in metrics  # verl's own metrics are still there
    for key in ("tracking", "segmentation/video", "ocr", "multiple_choice"):
        assert metrics[f"ema_grpo/moving_std/{key}"] == pytest.approx(ema_grpo.TASK_MOMENTS.std(key, 1e-3))
        assert f"ema_grpo/moving_mean/{key}" in metrics
    assert metrics["ema_grpo/guard_fallback_frac/ocr"] == pytest.approx(1 / 6)
    assert 0 < metrics["ema_grpo/guard_fallback_frac"] < 1
    assert ema_grpo.pop_step_metrics() == {}, "metrics are logged once per step"


def test_one_sample_group_gets_zero_advantage_and_is_counted():
    """A group whose siblings' sessions failed: advantage 0 on every token, counted, its score still in the
    moments (the spec's reference gives the same on this batch)."""
    data, scores, problem_types, data_types = mixed_batch(np.random.default_rng(4), 0)
    uids = list(data.non_tensor_batch["uid"])
    siblings = [i for i in range(1, len(uids)) if uids[i] == uids[0]]
    keep = np.array([i for i in range(len(uids)) if i not in siblings])  # row 0's group keeps only row 0
    data = data.select_idxs(keep)
    out = ray_trainer.compute_advantage(data, adv_estimator="ema_grpo", config=algorithm_config())
    lonely = list(data.non_tensor_batch["uid"]).index(uids[0])
    assert torch.count_nonzero(out.batch["advantages"][lonely]) == 0
    assert ema_grpo.pop_step_metrics()["ema_grpo/singleton_groups"] == 1.0
    spec = SpecEmaGrpo()
    expected = spec.step(
        [scores[i] for i in keep],
        list(data.non_tensor_batch["uid"]),
        [problem_types[i] for i in keep],
        [data_types[i] for i in keep],
    )
    got = out.batch["advantages"].double().sum(-1) / data.batch["response_mask"].double().sum(-1)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    moments = ema_grpo.TASK_MOMENTS.state_dict()
    assert moments.keys() == {canonical_key(key) for key in spec.moments}
    for key, (m1, m2) in spec.moments.items():
        assert moments[canonical_key(key)] == pytest.approx([m1, m2], abs=1e-12)


def test_padding_rows_get_zero_advantage_and_stay_out_of_moments_and_metrics():
    """Rows marked as padding (copies of row 0's task, zero reward, one shared uid, an ``is_padding`` column)
    change nothing for the real rows. (The v1 trainer's padding, made by verl's own code, is tested in
    test_v1_trainer_glue.py.)"""
    data, scores, problem_types, data_types = mixed_batch(np.random.default_rng(8), 0)
    real_count = len(data)
    pads = data.select_idxs(np.zeros(3, dtype=np.int64))  # verl's pad rows copy the first row's fields
    pads.batch["token_level_rewards"].zero_()
    pads.non_tensor_batch["uid"] = np.array(["padcafe"] * 3, dtype=object)
    padded = DataProto.concat([data, pads])
    padded.non_tensor_batch["is_padding"] = np.arange(len(padded)) >= real_count
    out = ray_trainer.compute_advantage(padded, adv_estimator="ema_grpo", config=algorithm_config())
    padded_metrics, padded_moments = ema_grpo.pop_step_metrics(), ema_grpo.TASK_MOMENTS.state_dict()
    assert torch.count_nonzero(out.batch["advantages"][real_count:]) == 0
    ema_grpo.TASK_MOMENTS.reset()
    alone = ray_trainer.compute_advantage(data, adv_estimator="ema_grpo", config=algorithm_config())
    assert torch.equal(out.batch["advantages"][:real_count], alone.batch["advantages"])
    assert padded_moments == ema_grpo.TASK_MOMENTS.state_dict()
    assert padded_metrics == ema_grpo.pop_step_metrics()


def test_direct_calls_give_ema_grpo_its_tasks_and_leave_other_estimators_and_metrics_to_verl():
    """Outside any trainer's fit (a tool, a benchmark, a stock trainer in the same process), verl's
    ``compute_advantage`` still hands ``ema_grpo`` the batch's tasks; other estimators and the step metrics are
    verl's own."""
    data, scores, problem_types, data_types = mixed_batch(np.random.default_rng(9), 0)
    data.non_tensor_batch["task"] = np.array(["geometry"] * len(data), dtype=object)  # a third-party reward column
    data.non_tensor_batch["note"] = np.array(["free text"] * len(data), dtype=object)
    with legacy_glue_active(None):
        out = ray_trainer.compute_advantage(data, adv_estimator="ema_grpo", config=algorithm_config())
        expected = SpecEmaGrpo().step(scores, list(data.non_tensor_batch["uid"]), problem_types, data_types)
        np.testing.assert_allclose(out.batch["advantages"][:, 0].numpy(), expected, atol=1e-5)
        ema_grpo.pop_step_metrics()
        grpo = ray_trainer.compute_advantage(data, adv_estimator="grpo", config=algorithm_config())
        grpo.batch["token_level_scores"] = grpo.batch["token_level_rewards"]
        grpo.batch["prompts"] = torch.ones(len(grpo), 3, dtype=torch.long)
        grpo.batch["responses"] = torch.ones(len(grpo), RESPONSE_LEN, dtype=torch.long)
        grpo.batch["attention_mask"] = torch.cat([torch.ones(len(grpo), 3), grpo.batch["response_mask"]], dim=1)
        metrics = ray_trainer.compute_data_metrics(batch=grpo, use_critic=False)
    assert not any(key.startswith(("reward/", "ema_grpo/")) for key in metrics)


def test_missing_task_is_an_error_naming_the_sample():
    data, *_ = mixed_batch(np.random.default_rng(5), 0)
    data.non_tensor_batch["extra_info"][7] = {"data_type": "image"}
    with pytest.raises(ValueError, match="sample 7 has no 'problem_type'"):
        ray_trainer.compute_advantage(data, adv_estimator="ema_grpo", config=algorithm_config())


def test_without_sample_data_the_estimator_refuses_instead_of_using_one_task():
    data, *_ = mixed_batch(np.random.default_rng(6), 0)
    estimator = get_adv_estimator_fn("ema_grpo")
    with pytest.raises(RuntimeError, match="task of each sample did not reach the estimator"):
        estimator(
            token_level_rewards=data.batch["token_level_rewards"],
            response_mask=data.batch["response_mask"],
            index=data.non_tensor_batch["uid"],
            config=algorithm_config(),
        )


def test_per_sample_data_passed_by_verl_is_used_directly():
    """Once verl passes non_tensor_batch to estimators (verl#7473) the glue's context is not needed."""
    data, scores, problem_types, data_types = mixed_batch(np.random.default_rng(7), 0)
    advantages, _ = get_adv_estimator_fn("ema_grpo")(
        token_level_rewards=data.batch["token_level_rewards"],
        response_mask=data.batch["response_mask"],
        index=data.non_tensor_batch["uid"],
        config=algorithm_config(),
        non_tensor_batch=data.non_tensor_batch,
    )
    expected = SpecEmaGrpo().step(scores, list(data.non_tensor_batch["uid"]), problem_types, data_types)
    expected_tokens = torch.tensor(expected, dtype=torch.float64)[:, None] * data.batch["response_mask"].double()
    assert (advantages.double() - expected_tokens).abs().max().item() <= 1e-5
