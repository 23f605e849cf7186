"""``python -m onethinker_verl.miniature``, the README's second command, run for real with fewer steps: a tiny
model, SFT through verl's SFT trainer, one RL step through ``main_ppo +recipe=onethinker_cpu``, a resume into
step 2, the evaluation and the summary.

Marked ``slow`` (about 5.5 minutes on 2 cores), so left out of the default suite, which must stay under CI's
20 minutes: run it with ``python -m pytest -m slow tests``. The main_ppo loop itself (generation, update, weight
sync, checkpoint, resume) is checked in the default suite by tests/test_cpu_loop_e2e.py."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from onethinker_verl.glue.ema_checkpoint import EMA_STATE_FILE
from onethinker_verl.miniature.__main__ import STAGES, Run, StageFailed, main, parse_args, run_child

# The answer format on most rows (loss about 0.1; the default 120 steps end near the same loss). Fewer steps leave
# most groups all wrong: at 60 steps the filter kept 4 of 44 groups and needed 12 of its 20 generation batches
# for one step, too close to verl's max_num_gen_batches failure for a test.
SFT_STEPS = 90
TIMEOUT_S = 900

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def miniature(tmp_path_factory):
    output = tmp_path_factory.mktemp("miniature") / "out"
    launch = subprocess.Popen(
        [sys.executable, "-m", "onethinker_verl.miniature", "--output-dir", str(output),
         "--sft-steps", str(SFT_STEPS), "--rl-steps", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        text, _ = launch.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        text, _ = launch.communicate()
        pytest.fail(f"the miniature did not finish in {TIMEOUT_S} s:\n{text[-3000:]}")
    return output, launch.returncode, text


def test_every_stage_runs_in_order_with_its_timing(miniature):
    output, returncode, text = miniature
    assert returncode == 0, text[-5000:]
    progress = re.findall(r"^\[miniature\] stage (\d)/6 (\w+): (start|done in \d+ s)", text, flags=re.MULTILINE)
    expected = [(str(i), stage, event) for i, stage in enumerate(STAGES, 1) for event in ("start", "done")]
    assert [(n, s, e.split(" ")[0]) for n, s, e in progress] == expected
    for stage in ("model", "sft", "rl", "resume", "eval"):
        assert (output / "logs" / f"{stage}.log").stat().st_size > 0


def test_sft_teaches_the_answer_format(miniature):
    output, _, text = miniature
    facts = json.loads((output / "summary.json").read_text())["facts"]
    assert facts["sft_rows"] == 22  # one per row of the bundled RL sample
    assert facts["sft_loss_last"] < facts["sft_loss_first"] / 3
    assert Path(facts["sft_checkpoint"], "config.json").is_file()


def test_rl_checkpoints_hold_the_ema_moments_and_the_resume_continues_at_the_next_step(miniature):
    output, _, _ = miniature
    checkpoints = output / "rl" / "checkpoints"
    for step in (1, 2):
        moments = json.loads((checkpoints / f"global_step_{step}" / EMA_STATE_FILE).read_text())
        assert moments  # the per-task moments EMA-GRPO resumes from
    resume_log = (output / "logs" / "resume.log").read_text()
    assert re.search(rf"Resuming from {re.escape(str(checkpoints / 'global_step_1'))}\b", resume_log)
    summary = json.loads((output / "summary.json").read_text())
    assert [step["step"] for step in summary["steps"]] == [1, 2]  # step 1 before the resume, step 2 after it
    assert "Resuming from" in summary["facts"]["resume_line"]
    assert Path(summary["facts"]["rl_hf_model"], "config.json").is_file()


def test_reward_varies_and_the_filter_counts_are_reported(miniature):
    output, _, _ = miniature
    summary = json.loads((output / "summary.json").read_text())
    steps = summary["steps"]
    # a constant reward would leave the filter and the estimator nothing to work on
    assert any(step["critic/score/max"] > step["critic/score/min"] for step in steps)
    totals = summary["online_filter"]
    assert totals["groups_kept"] == sum(step["online_filter/groups_kept"] for step in steps) > 0
    assert totals["groups_decided"] == totals["groups_kept"] + totals["dropped_low"] + totals["dropped_high"]
    markdown = (output / "summary.md").read_text()
    assert f"online filter: kept {totals['groups_kept']} of {totals['groups_decided']} groups" in markdown
    assert str(output / "rl" / "checkpoints" / "global_step_2") in markdown


def test_the_rl_checkpoint_is_evaluated_on_the_benchmark_sample(miniature):
    output, _, _ = miniature
    report = json.loads((output / "eval" / "report.json").read_text())
    generation = json.loads(next((output / "eval" / "generation").glob("*.json")).read_text())
    assert len(generation["results"]) == 3 and all(row["output"] is not None for row in generation["results"])
    assert report and (output / "eval" / "report.md").is_file()
    assert str(output / "eval" / "report.md") in (output / "summary.md").read_text()


def test_a_failing_stage_names_its_log_and_the_run_exits_non_zero(tmp_path, caplog):
    run = Run(output=tmp_path, args=parse_args([]))
    (tmp_path / "logs").mkdir()
    with pytest.raises(StageFailed, match=r"exited with status 3; log: .*logs/sft\.log"):
        run_child(run, "sft", [sys.executable, "-c", "import sys; print('the reason'); sys.exit(3)"])
    assert "the reason" in (tmp_path / "logs" / "sft.log").read_text()


def test_bad_options_are_refused():
    with pytest.raises(SystemExit) as refused:
        main(["--sft-steps", "0"])
    assert refused.value.code == 2
