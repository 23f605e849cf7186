"""``python -m onethinker_verl.miniature``: the OneThinker pipeline in miniature (see the package docstring).

Exit status 0 when every stage ran and checked out; 1 when a stage failed (its log's last lines are shown).
"""

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import onethinker_verl
from onethinker_verl.cpu.ray_temp import short_ray_temp_dir
from onethinker_verl.data.sample import sample_dir, sample_file
from onethinker_verl.glue.ema_checkpoint import EMA_STATE_FILE
from onethinker_verl.miniature.sft_data import write_answer_format_rows
from onethinker_verl.miniature.summary import read_step_metrics, write_summary
from onethinker_verl.sft.cpu_run import CPU_MODEL_OVERRIDES
from onethinker_verl.tiny_model import FAMILIES

logger = logging.getLogger("onethinker_verl.miniature")

STAGES = ("model", "sft", "rl", "resume", "eval", "summary")
# What this command writes under the output folder (and clears before a new run: a stale RL checkpoint would
# otherwise be resumed from).
OWNED = ("logs", "model", "sft", "rl", "eval", "summary.md", "summary.json")
BENCHMARK = Path(onethinker_verl.__file__).parent / "evaluate" / "sample" / "eval_tiny.json"
PREPARE_SFT = Path(onethinker_verl.__file__).resolve().parents[1] / "data_prep" / "prepare_sft.py"
LOG_TAIL_LINES = 40
RESUME_LINE = re.compile(r"Resuming from ([^\s,]+)")
# Longer responses than the CPU recipe's 16 tokens: the cold-start format plus a short answer or a grounding box
# fit (about 14 to 34 tokens); tracking and segmentation answers do not, and score 0 as a truncated answer would.
RL_RESPONSE_TOKENS = 48
SFT_LOSS = re.compile(r"train/loss:([0-9.eE+-]+)")


class StageFailed(RuntimeError):
    """A stage did not do what it is for; the message says what and where its log is."""


@dataclass
class Run:
    """What the stages found, for the summary."""

    output: Path
    args: argparse.Namespace
    started: float = field(default_factory=time.monotonic)
    seconds: dict = field(default_factory=dict)  # stage -> wall seconds
    facts: dict = field(default_factory=dict)  # what the stages found and where they left it

    def log(self, stage: str) -> Path:
        return self.output / "logs" / f"{stage}.log"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m onethinker_verl.miniature",
        description="The OneThinker pipeline in miniature on the bundled sample corpus with a tiny model built "
        "locally: SFT cold start (verl's SFT trainer) -> RL (main_ppo +recipe=onethinker_cpu: onethinker "
        "reward, EMA-GRPO, online filter), checkpoint and resume -> evaluation -> summary. CPU only, no download.",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("onethinker_miniature"),
                        help="where models, checkpoints, logs, the evaluation report and the summary go; what a "
                        "previous run of this command left there is replaced (default: ./onethinker_miniature)")
    parser.add_argument("--family", choices=FAMILIES, default="qwen3_vl", help="tiny model family (default: qwen3_vl)")
    parser.add_argument("--sft-steps", type=int, default=120, help="SFT steps (default: 120)")
    parser.add_argument("--sft-lr", type=float, default=5e-3, help="SFT learning rate (default: 5e-3)")
    parser.add_argument("--sft-batch-size", type=int, default=8, help="SFT rows per step (default: 8)")
    parser.add_argument("--rl-steps", type=int, default=2,
                        help="RL steps before the resume, which runs one more (default: 2)")
    parser.add_argument("--eval-max-new-tokens", type=int, default=96,
                        help="most new tokens per benchmark answer (default: 96)")
    args = parser.parse_args(argv)
    for name in ("sft_steps", "sft_batch_size", "rl_steps", "eval_max_new_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.sft_lr > 0:
        parser.error(f"--sft-lr must be positive, got {args.sft_lr}")
    return args


def run_child(run: Run, stage: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> str:
    """Run ``argv`` with its output in the stage's log; the log's text. Raises :class:`StageFailed` with the
    log's last lines when it exits non-zero."""
    log_path = run.log(stage)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        try:
            returncode = child.wait()
        except BaseException:  # interrupted: take the child's whole process group down with us
            os.killpg(child.pid, signal.SIGKILL)
            raise
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if returncode != 0:
        raise StageFailed(f"`{' '.join(argv[:4])} ...` exited with status {returncode}; log: {log_path}")
    return text


def stage_model(run: Run) -> None:
    folder = run.output / "model" / f"tiny_{run.args.family}"
    run_child(run, "model", [sys.executable, "-m", "onethinker_verl.tiny_model", str(folder),
                             "--family", run.args.family])
    run.facts["base_model"] = str(folder)


def stage_sft(run: Run) -> None:
    if not PREPARE_SFT.is_file():
        raise StageFailed(f"{PREPARE_SFT} not found: the miniature runs from a source checkout of onethinker-verl")
    work = run.output / "sft"
    rows = write_answer_format_rows(sample_file("rl_train.jsonl"), work / "answer_format.json")
    run_child(run, "sft", [sys.executable, str(PREPARE_SFT), "--input", str(work / "answer_format.json"),
                           "--media-root", sample_dir(), "--output", str(work / "data"), "--relative-paths"])
    overrides = [
        "+recipe=onethinker_sft",
        f"model.path={run.facts['base_model']}",
        f"data.train_files={work / 'data' / 'train.parquet'}",
        f"data.media_root={sample_dir()}",
        f"data.train_batch_size={run.args.sft_batch_size}",
        "data.num_workers=0",  # the rows are few and tiny; worker processes would only cost start-up time
        f"optim.lr={run.args.sft_lr}",
        "optim.lr_warmup_steps_ratio=0",
        "engine.dtype=float32",  # the tiny model trains in full precision on the CPU
        "model.enable_gradient_checkpointing=false",
        f"trainer.total_training_steps={run.args.sft_steps}",
        "trainer.total_epochs=1000000",  # the steps decide: many epochs of the 22 rows
        f"trainer.save_freq={run.args.sft_steps}",
        f"trainer.default_local_dir={work / 'checkpoints'}",
        "trainer.logger=[console]",
        *CPU_MODEL_OVERRIDES,
    ]
    text = run_child(run, "sft", [sys.executable, "-m", "onethinker_verl.sft.cpu_run", *overrides])
    checkpoint = work / "checkpoints" / f"global_step_{run.args.sft_steps}" / "huggingface"
    if not (checkpoint / "config.json").is_file():
        raise StageFailed(f"the SFT run left no Hugging Face checkpoint at {checkpoint}; log: {run.log('sft')}")
    losses = [float(value) for value in SFT_LOSS.findall(text)]
    run.facts.update(sft_rows=rows, sft_checkpoint=str(checkpoint), sft_loss_first=losses[0] if losses else None,
                     sft_loss_last=losses[-1] if losses else None)


def _rl_command(run: Run, total_steps: int, ray_dir: str) -> list[str]:
    return [
        sys.executable, "-m", "verl.trainer.main_ppo", "+recipe=onethinker_cpu",
        f"actor_rollout_ref.model.path={run.facts['sft_checkpoint']}",
        f"trainer.total_training_steps={total_steps}",
        "trainer.save_freq=1",
        f"trainer.default_local_dir={run.output / 'rl' / 'checkpoints'}",
        "trainer.logger=[console,file]",
        f"+ray_kwargs.ray_init._temp_dir={ray_dir}",
        f"data.max_response_length={RL_RESPONSE_TOKENS}",
        # the Hugging Face model beside the sharded checkpoint: what the evaluation loads
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
    ]


def _run_rl(run: Run, stage: str, total_steps: int) -> str:
    metrics = run.output / "rl" / f"metrics_{stage}.jsonl"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    # Ray's socket paths must stay short: its temporary folder lives in /tmp, not under the output folder
    with short_ray_temp_dir("otm_ray_") as ray_dir:
        return run_child(run, stage, _rl_command(run, total_steps, ray_dir),
                         env={"VERL_FILE_LOGGER_PATH": str(metrics)}, cwd=run.output / "rl")


def _step_folder(run: Run, step: int) -> Path:
    return run.output / "rl" / "checkpoints" / f"global_step_{step}"


def stage_rl(run: Run) -> None:
    steps = run.args.rl_steps
    _run_rl(run, "rl", steps)
    last = _step_folder(run, steps)
    if not (last / EMA_STATE_FILE).is_file():
        raise StageFailed(f"the RL run left no {EMA_STATE_FILE} in {last}; log: {run.log('rl')}")
    run.facts["rl_checkpoint"] = str(last)


def stage_resume(run: Run) -> None:
    steps = run.args.rl_steps
    text = _run_rl(run, "resume", steps + 1)
    resumed = RESUME_LINE.search(text)
    if resumed is None or Path(resumed[1]).resolve() != _step_folder(run, steps).resolve():
        raise StageFailed(f"the resumed run did not say 'Resuming from {_step_folder(run, steps)}'; "
                          f"log: {run.log('resume')}")
    last = _step_folder(run, steps + 1)
    hf_model = last / "actor" / "huggingface"
    if not (last / EMA_STATE_FILE).is_file() or not (hf_model / "config.json").is_file():
        raise StageFailed(f"the resumed run left no {EMA_STATE_FILE} or no actor/huggingface in {last}; "
                          f"log: {run.log('resume')}")
    run.facts.update(resume_line=resumed[0], rl_checkpoint=str(last), rl_hf_model=str(hf_model))


def stage_eval(run: Run) -> None:
    work = run.output / "eval"
    run_child(run, "eval", [
        sys.executable, "-m", "onethinker_verl.evaluate", "generate", "--model", run.facts["rl_hf_model"],
        "--inputs", str(BENCHMARK), "--out-dir", str(work / "generation"), "--backend", "hf",
        "--max-new-tokens", str(run.args.eval_max_new_tokens), "--media-root", sample_dir(),
    ])
    outputs = sorted((work / "generation").glob("*.json"))
    run_child(run, "eval", [
        sys.executable, "-m", "onethinker_verl.evaluate", "score", "--predictions", *map(str, outputs),
        "--output", str(work / "report.json"), "--markdown", str(work / "report.md"),
    ])
    report = json.loads((work / "report.json").read_text(encoding="utf-8"))
    run.facts.update(eval_report=str(work / "report.md"), eval_report_json=str(work / "report.json"),
                     eval_metrics={name: benchmark["metrics"] for name, benchmark in report.items()})


def stage_summary(run: Run) -> None:
    steps = [*read_step_metrics(run.output / "rl" / "metrics_rl.jsonl"),
             *read_step_metrics(run.output / "rl" / "metrics_resume.jsonl")]
    if not steps:
        raise StageFailed(f"no per-step metrics in {run.output / 'rl'}")
    seconds = {**run.seconds, "total": round(time.monotonic() - run.started, 1)}
    write_summary(run.output, steps, run.facts, seconds)


STAGE_FUNCTIONS = {"model": stage_model, "sft": stage_sft, "rl": stage_rl, "resume": stage_resume,
                   "eval": stage_eval, "summary": stage_summary}


def _clear(output: Path) -> None:
    for name in OWNED:
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[miniature] %(message)s")
    output = args.output_dir.resolve()
    output.mkdir(parents=True, exist_ok=True)
    _clear(output)
    (output / "logs").mkdir()
    run = Run(output=output, args=args)
    for number, stage in enumerate(STAGES, 1):
        # the summary stage runs no child process, so it has no log
        shown_log = f" (log: {run.log(stage)})" if stage != "summary" else ""
        logger.info("stage %d/%d %s: start%s", number, len(STAGES), stage, shown_log)
        stage_started = time.monotonic()
        try:
            STAGE_FUNCTIONS[stage](run)
        except StageFailed as failure:
            logger.error("stage %d/%d %s: FAILED after %.0f s: %s", number, len(STAGES), stage,
                         time.monotonic() - stage_started, failure)
            tail = _tail(run.log(stage))
            if tail:
                logger.error("last lines of %s:\n%s", run.log(stage), tail)
            return 1
        run.seconds[stage] = round(time.monotonic() - stage_started, 1)
        logger.info("stage %d/%d %s: done in %.0f s", number, len(STAGES), stage, run.seconds[stage])
    logger.info("done in %.0f s: %s", time.monotonic() - run.started, output / "summary.md")
    print((output / "summary.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
