"""The miniature's cold-start data: the RL sample's prompts answered in the recipe's answer format.

A tiny random model emits token soup: every response would score 0, every group would have the same reward,
the online filter would drop every group and EMA-GRPO would see no spread. A few dozen SFT steps on the RL
sample's own prompts (rendered exactly as the RL dataset renders them) with ``<think> ... </think>`` and the
ground-truth ``<answer> ... </answer>`` as the assistant turn teach it the format and most answers; sampling
at the RL temperature then gives groups with some right and some wrong answers.

The rows are written in the OneThinker SFT release layout (``messages`` + ``images`` / ``videos``), the input
of ``data_prep/prepare_sft.py``.
"""

import json
from pathlib import Path

from onethinker_verl.data.corpus import ground_truth_inner, parse_row, verl_rl_record
from onethinker_verl.data.prompts import load_templates
from onethinker_verl.data.records import iter_records

# The reasoning text of every cold-start answer: words the tiny tokenizer was trained on, so a few tokens, and
# a multiple-choice or numeric answer fits the CPU recipe's short responses.
THINKING = "Looking carefully."


def answer_format_rows(rl_file: str | Path, templates_path: str | None = None) -> list[dict]:
    """One SFT conversation per row of ``rl_file`` (OneThinker RL JSON / JSON Lines): the user turn is the RL
    prompt, the assistant turn ``<think>THINKING</think><answer>ground truth</answer>``."""
    templates = load_templates(templates_path)
    rows = []
    for record in iter_records(rl_file):
        if record.error is not None:
            raise ValueError(f"{rl_file}: row {record.position}: {record.error}")
        row = parse_row(record.value, fallback_id=f"row-{record.position}")
        prompt = verl_rl_record(row, record.position, templates)["prompt"]
        answer = f"<think>{THINKING}</think><answer>{ground_truth_inner(row.ground_truth)}</answer>"
        conversation = {"id": row.row_id, "messages": [*prompt, {"role": "assistant", "content": answer}]}
        if row.images:
            conversation["images"] = row.images
        if row.videos:
            conversation["videos"] = row.videos
        rows.append(conversation)
    return rows


def write_answer_format_rows(rl_file: str | Path, output: Path) -> int:
    """Write :func:`answer_format_rows` as a JSON array to ``output``; the number of rows."""
    rows = answer_format_rows(rl_file)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return len(rows)
