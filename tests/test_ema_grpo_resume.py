"""EMA-GRPO moments survive verl's checkpoint / resume: N steps, verl's ``_save_checkpoint``, a fresh
process that resumes with verl's ``_load_checkpoint`` and runs M more steps, against N + M steps in one go.

The trainer is verl's v1 ``PPOTrainerSync`` without its GPU workers: its worker group and dataloader are
stand-ins that record the save / load calls (model weights are not this package's business), everything
else in the save and load paths is verl's own code plus this package's glue.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch
import verl  # noqa: F401
from verl.trainer.ppo import ray_trainer
from verl.trainer.ppo.checkpoint_callback import CheckpointCallback
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from conftest import REPO_ROOT, compose_recipe
from onethinker_verl.advantage import ema_grpo
from onethinker_verl.verl_glue import EMA_STATE_FILE
from test_ema_grpo import mixed_batch

N_STEPS, M_STEPS = 3, 2


class RecordingWorkerGroup:
    def __init__(self):
        self.calls = []

    def save_checkpoint(self, local_path, *args, **kwargs):
        self.calls.append(("save", local_path))

    def load_checkpoint(self, local_path, *args, **kwargs):
        self.calls.append(("load", local_path))


class StatelessLoader:
    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        assert state == {}


def trainer_without_workers(checkpoint_dir):
    trainer = PPOTrainerSync.__new__(PPOTrainerSync)
    trainer.config = compose_recipe(f"trainer.default_local_dir={checkpoint_dir}", "trainer.resume_mode=auto")
    trainer.trainer_mode, trainer.use_critic = "sync", False
    trainer.actor_rollout_wg, trainer.train_dataloader = RecordingWorkerGroup(), StatelessLoader()
    trainer.checkpoint_callback = CheckpointCallback(trainer.config)
    return trainer


def advantages_of_steps(first_step, last_step, config):
    """Per-sample advantages of training steps [first_step, last_step), each with its own seeded batch."""
    out = []
    for step in range(first_step, last_step):
        data, *_ = mixed_batch(np.random.default_rng(1000 + step), step)
        data = ray_trainer.compute_advantage(data, adv_estimator="ema_grpo", config=config)
        out.append(data.batch["advantages"].sum(-1).tolist())  # one value per sample (masked sum)
    return out


RESUME_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    import verl
    from onethinker_verl.advantage import ema_grpo
    from test_ema_grpo_resume import advantages_of_steps, trainer_without_workers
    trainer = trainer_without_workers({checkpoint_dir!r})
    trainer._load_checkpoint()
    assert trainer.global_steps == {n}, trainer.global_steps
    config = trainer.config.algorithm
    print(json.dumps({{"moments": ema_grpo.TASK_MOMENTS.state_dict(),
                       "advantages": advantages_of_steps({n}, {n} + {m}, config)}}))
    """
)


def test_resumed_run_continues_bit_for_bit(tmp_path):
    config = compose_recipe().algorithm
    ema_grpo.TASK_MOMENTS.reset()
    uninterrupted = advantages_of_steps(0, N_STEPS + M_STEPS, config)

    ema_grpo.TASK_MOMENTS.reset()
    first_part = advantages_of_steps(0, N_STEPS, config)
    assert first_part == uninterrupted[:N_STEPS]
    saved_moments = ema_grpo.TASK_MOMENTS.state_dict()
    trainer = trainer_without_workers(tmp_path)
    trainer.global_steps = N_STEPS
    trainer._save_checkpoint()
    step_folder = tmp_path / f"global_step_{N_STEPS}"
    assert json.loads((step_folder / EMA_STATE_FILE).read_text())["task_moments"] == saved_moments
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_text() == str(N_STEPS)

    script = RESUME_SCRIPT.format(tests=str(REPO_ROOT / "tests"), checkpoint_dir=str(tmp_path), n=N_STEPS, m=M_STEPS)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "tests")),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["moments"] == saved_moments, "the fresh process restored the saved moments exactly"
    np.testing.assert_allclose(np.array(resumed["advantages"]), np.array(uninterrupted[N_STEPS:]), rtol=0, atol=1e-6)


def test_resume_without_saved_moments_warns(tmp_path, caplog):
    trainer = trainer_without_workers(tmp_path)
    (tmp_path / "global_step_2").mkdir()
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("2")
    torch.save({}, tmp_path / "global_step_2" / "data.pt")
    with caplog.at_level("WARNING"):
        trainer._load_checkpoint()
    assert trainer.global_steps == 2
    assert any(EMA_STATE_FILE in record.getMessage() for record in caplog.records)
