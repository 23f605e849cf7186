"""The miniature's summary: per-step RL metrics (from verl's file logger), the online filter's kept and dropped
groups, and where the checkpoints, logs and evaluation report are; ``summary.json`` (everything) and
``summary.md`` (a table and the paths)."""

import json
from pathlib import Path

# The per-step columns of summary.md: (metric key as verl / the plugin logs it, column title).
TABLE_COLUMNS = (
    ("critic/score/mean", "reward mean"),
    ("critic/score/min", "reward min"),
    ("critic/score/max", "reward max"),
    ("online_filter/groups_kept", "groups kept"),
    ("online_filter/dropped_low", "dropped (all wrong)"),
    ("online_filter/dropped_high", "dropped (all right)"),
    ("actor/pg_loss", "pg loss"),
    ("response_length/mean", "response length"),
    ("timing_s/step", "step s"),
)
KEPT, DROPPED_LOW, DROPPED_HIGH = (
    "online_filter/groups_kept", "online_filter/dropped_low", "online_filter/dropped_high",
)


def read_step_metrics(path: Path) -> list[dict]:
    """``[{"step": N, **metrics}]`` from a verl file-logger JSON Lines file (``{"step", "data"}`` per line);
    empty when the file does not exist."""
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            steps.append({"step": int(record["step"]), **record["data"]})
    return steps


def filter_totals(steps: list[dict]) -> dict:
    """Groups the online filter kept and dropped, summed over the steps."""
    kept = sum(int(step.get(KEPT, 0)) for step in steps)
    low = sum(int(step.get(DROPPED_LOW, 0)) for step in steps)
    high = sum(int(step.get(DROPPED_HIGH, 0)) for step in steps)
    return {"groups_kept": kept, "dropped_low": low, "dropped_high": high, "groups_decided": kept + low + high}


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_markdown(summary: dict) -> str:
    facts, totals, seconds = summary["facts"], summary["online_filter"], summary["seconds"]
    lines = [
        "# OneThinker in miniature",
        "",
        f"Wall time {seconds.get('total', 0):.0f} s: "
        + ", ".join(f"{stage} {value:.0f} s" for stage, value in seconds.items() if stage != "total") + ".",
        "",
        f"- SFT cold start: {facts.get('sft_rows')} rows, loss {_cell(facts.get('sft_loss_first'))} -> "
        f"{_cell(facts.get('sft_loss_last'))}; checkpoint `{facts.get('sft_checkpoint')}`",
        f"- RL (`main_ppo +recipe=onethinker_cpu`): steps {summary['steps'][0]['step']}-{summary['steps'][-1]['step']}, "
        f"a checkpoint each step; the last step ran after a restart that logged `{facts.get('resume_line')}`",
        f"- online filter: kept {totals['groups_kept']} of {totals['groups_decided']} groups "
        f"(dropped {totals['dropped_low']} all wrong, {totals['dropped_high']} all right)",
        f"- RL checkpoint: `{facts.get('rl_checkpoint')}` (EMA moments: `onethinker_ema_grpo.json`, "
        f"Hugging Face model: `{facts.get('rl_hf_model')}`)",
        f"- evaluation of the RL checkpoint: "
        + "; ".join(f"{name} overall/acc {metrics.get('overall/acc', 0):.3f}"
                    for name, metrics in facts.get("eval_metrics", {}).items())
        + f"; report `{facts.get('eval_report')}`",
        f"- logs: `{summary['logs']}`",
        "",
        "| step | " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
        "|---" * (len(TABLE_COLUMNS) + 1) + "|",
    ]
    for step in summary["steps"]:
        lines.append(f"| {step['step']} | " + " | ".join(_cell(step.get(key)) for key, _ in TABLE_COLUMNS) + " |")
    lines.append("")
    lines.append("Every metric of every step is in summary.json.")
    return "\n".join(lines) + "\n"


def write_summary(output: Path, steps: list[dict], facts: dict, seconds: dict) -> dict:
    """Write ``summary.json`` and ``summary.md`` into ``output``; the summary."""
    summary = {
        "steps": steps,
        "online_filter": filter_totals(steps),
        "facts": facts,
        "seconds": seconds,
        "logs": str(output / "logs"),
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    (output / "summary.md").write_text(render_markdown(summary), encoding="utf-8")
    return summary
