"""EMA-GRPO moments survive verl's checkpoint / resume: N steps, verl's ``_save_checkpoint``, a fresh
process that resumes with verl's ``_load_checkpoint`` and runs M more steps, against N + M steps in one go;
the moments file is written before verl's ``latest_checkpointed_iteration.txt`` marker (a save interrupted
at the marker leaves it in place), and a checkpoint without readable moments is an error on resume (or,
when allowed, a warned fresh start).

The trainer is verl's v1 ``PPOTrainerSync`` built by its own ``__init__`` (which installs the glue) without
its GPU workers: its worker group and dataloader are stand-ins that record the save / load calls (model
weights are not this package's business), everything else in the save and load paths is verl's own code
plus this package's glue.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch
import verl  # noqa: F401
import pytest
from verl.trainer.ppo import ray_trainer
from verl.trainer.ppo.checkpoint_callback import CheckpointCallback
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from conftest import REPO_ROOT, compose_recipe
from onethinker_verl.advantage import ema_grpo
from onethinker_verl.advantage.sample_data import provide_sample_data
from onethinker_verl.glue.ema_checkpoint import EMA_STATE_FILE, EmaStateError
from test_ema_grpo import mixed_batch

N_STEPS, M_STEPS = 3, 2


class RecordingWorkerGroup:
    """Records saves and loads, and whether the moments file was already in the step folder at each save."""

    def __init__(self):
        self.calls = []

    def save_checkpoint(self, local_path, *args, **kwargs):
        moments_file = os.path.join(os.path.dirname(local_path), EMA_STATE_FILE)
        self.calls.append(("save", local_path, os.path.exists(moments_file)))

    def load_checkpoint(self, local_path, *args, **kwargs):
        self.calls.append(("load", local_path))


class StatelessLoader:
    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        assert state == {}


class MarkerCheckingCallback(CheckpointCallback):
    """verl's checkpoint callback hook (``trainer.checkpoint_callback_class``): runs right after verl wrote
    its marker; records whether the moments file was there."""

    seen = []

    def on_save(self, trainer, global_step, checkpoint_dir, async_save=False, **kwargs):
        self.seen.append((global_step, os.path.exists(os.path.join(checkpoint_dir, EMA_STATE_FILE))))


def trainer_without_workers(checkpoint_dir, *overrides):
    trainer = PPOTrainerSync(
        compose_recipe(
            f"trainer.default_local_dir={checkpoint_dir}",
            "trainer.resume_mode=auto",
            "++trainer.checkpoint_callback_class=test_ema_grpo_resume.MarkerCheckingCallback",
            *overrides,
        )
    )
    trainer.actor_rollout_wg, trainer.train_dataloader = RecordingWorkerGroup(), StatelessLoader()
    return trainer


def advantages_of_steps(first_step, last_step, config):
    """Per-sample advantages of training steps [first_step, last_step), each with its own seeded batch."""
    out = []
    for step in range(first_step, last_step):
        data, *_ = mixed_batch(np.random.default_rng(1000 + step), step)
        with provide_sample_data(data.non_tensor_batch):
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
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["moments"] == saved_moments, "the fresh process restored the saved moments exactly"
    np.testing.assert_allclose(np.array(resumed["advantages"]), np.array(uninterrupted[N_STEPS:]), rtol=0, atol=1e-6)


def test_moments_are_written_before_verls_marker_and_a_save_interrupted_there_keeps_the_old_marker(tmp_path):
    ema_grpo.TASK_MOMENTS.reset()
    config = compose_recipe().algorithm
    advantages_of_steps(0, 2, config)
    moments_at_2 = ema_grpo.TASK_MOMENTS.state_dict()
    trainer = trainer_without_workers(tmp_path)
    MarkerCheckingCallback.seen.clear()
    trainer.global_steps = 2
    trainer._save_checkpoint()
    assert trainer.actor_rollout_wg.calls == [("save", str(tmp_path / "global_step_2" / "actor"), True)]
    assert MarkerCheckingCallback.seen == [(2, True)]
    advantages_of_steps(2, 3, config)
    # Interrupt step 3's save exactly at verl's marker write: the marker path cannot be opened for writing.
    marker = tmp_path / "latest_checkpointed_iteration.txt"
    marker.unlink()
    marker.mkdir()
    trainer.global_steps = 3
    with pytest.raises(IsADirectoryError):
        trainer._save_checkpoint()
    assert (tmp_path / "global_step_3" / EMA_STATE_FILE).exists(), "written before verl's marker"
    assert MarkerCheckingCallback.seen == [(2, True)], "the callback never ran for the interrupted save"
    marker.rmdir()
    marker.write_text("2")  # what the marker still says after a crash between the writes
    ema_grpo.TASK_MOMENTS.reset()
    resumed = trainer_without_workers(tmp_path)
    resumed._load_checkpoint()
    assert resumed.global_steps == 2
    assert ema_grpo.TASK_MOMENTS.state_dict() == moments_at_2


def checkpoint_with_moments_file(tmp_path, content):
    (tmp_path / "global_step_2").mkdir()
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("2")
    torch.save({}, tmp_path / "global_step_2" / "data.pt")
    if content is not None:
        (tmp_path / "global_step_2" / EMA_STATE_FILE).write_text(content)


@pytest.mark.parametrize(
    "content",
    [
        None,
        '{"format": 1, "global_step": 2, "task_moments": {"tracking": [0.5',
        '{"format": 1, "global_step": 7, "task_moments": {}}',
        '{"format": 1, "global_step": 2, "task_moments": {"OCR": [0.5, 0.3], "ocr": [0.4, 0.2]}}',
    ],
    ids=["missing", "truncated", "other-step", "one-task-twice-in-old-names"],
)
def test_resume_without_readable_moments_is_an_error(tmp_path, content):
    checkpoint_with_moments_file(tmp_path, content)
    with pytest.raises(EmaStateError, match="allow_fresh_moments_on_resume=true"):
        trainer_without_workers(tmp_path)._load_checkpoint()


def test_resume_with_fresh_moments_allowed_warns(tmp_path, caplog):
    checkpoint_with_moments_file(tmp_path, "not json")
    ema_grpo.TASK_MOMENTS.load_state_dict({"tracking": [0.5, 0.3]})
    trainer = trainer_without_workers(tmp_path, "algorithm.ema_grpo.allow_fresh_moments_on_resume=true")
    with caplog.at_level(logging.WARNING):
        trainer._load_checkpoint()
    assert trainer.global_steps == 2
    assert ema_grpo.TASK_MOMENTS.state_dict() == {}
    assert any(EMA_STATE_FILE in r.getMessage() and "restart" in r.getMessage() for r in caplog.records)


def test_resume_from_moments_written_with_the_old_task_names(tmp_path):
    """A format-1 moments file (task keys spelled as the data spells problem types) resumes under the canonical
    task names; the next step continues those moments and the next save writes format 2."""
    old = {"multiple choice": [0.75, 0.9], "OCR": [0.5, 0.4], "spatial-temporal grounding": [0.3, 0.2],
           "segmentation/image": [0.6, 0.5], "tracking": [0.4, 0.25]}
    checkpoint_with_moments_file(tmp_path, json.dumps({"format": 1, "global_step": 2, "task_moments": old}))
    ema_grpo.TASK_MOMENTS.reset()
    trainer = trainer_without_workers(tmp_path)
    trainer._load_checkpoint()
    resumed = {"multiple_choice": [0.75, 0.9], "ocr": [0.5, 0.4], "spatial_temporal_grounding": [0.3, 0.2],
               "segmentation/image": [0.6, 0.5], "tracking": [0.4, 0.25]}
    assert ema_grpo.TASK_MOMENTS.state_dict() == resumed

    advantages_of_steps(2, 3, trainer.config.algorithm)
    moments = ema_grpo.TASK_MOMENTS.state_dict()
    assert set(resumed) <= set(moments) and not {"multiple choice", "OCR"} & set(moments)
    _, scores, problem_types, _ = mixed_batch(np.random.default_rng(1002), 2)  # step 2's batch, as above
    choice_scores = [score for score, kind in zip(scores, problem_types) if kind == "multiple choice"]
    decay = trainer.config.algorithm.ema_grpo.decay
    continued = decay * 0.75 + (1 - decay) * sum(choice_scores) / len(choice_scores)
    assert moments["multiple_choice"][0] == pytest.approx(continued, abs=1e-12)

    trainer.global_steps = 3
    trainer._save_checkpoint()
    saved = json.loads((tmp_path / "global_step_3" / EMA_STATE_FILE).read_text())
    assert saved["format"] == 2 and saved["task_moments"] == moments
