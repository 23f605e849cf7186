"""Run VLMEvalKit's image-QA / captioning benchmarks on a OneThinker checkpoint with OneThinker's prompt
and answer extraction (the reference evaluates MMMU, MathVista, MathVerse, MMBench, MMStar, AI2D,
ScienceQA, MMT-Bench, MMSci, MMVet, Video-Holmes, LongVideoBench and Video-MMLU this way).

    git clone https://github.com/open-compass/VLMEvalKit && pip install -e VLMEvalKit
    python -m onethinker_verl.evaluate.vlmevalkit --vlmevalkit-dir VLMEvalKit --model CKPT \\
        --name OneThinker-8B -- --data MMMU_DEV_VAL MathVerse_MINI --work-dir OUT --use-vllm

Everything after ``--`` goes to VLMEvalKit's own ``run.py`` (its ``--model`` is set to ``--name``). The
benchmarks, their judges and their metrics stay VLMEvalKit's; this module only registers
:class:`OneThinkerChat` under ``--name`` in ``vlmeval.config.supported_VLM`` and runs ``run.py`` in the
same process. ``OneThinkerChat`` wraps VLMEvalKit's own Qwen3-VL model class (``Qwen3VLChat``; set
``--family qwen2_5_vl`` for ``Qwen2VLChat``) and:

- appends OneThinker's instruction (think in ``<think>``, answer in ``<answer>``) and the task instruction
  to the question, from the same templates as training (:mod:`onethinker_verl.data.prompts`): multiple
  choice for VLMEvalKit's MCQ / Y/N datasets, math for datasets whose name contains ``Math``,
  open-ended otherwise;
- returns the answer as the reference's VLMEvalKit fork effectively extracts it with vLLM
  (:func:`extract_vlmevalkit_answer`).
The adapter sets at most 8,192 new tokens, as that fork does; the fork's other decoding settings
(``max_model_len`` 81,920, seed 0, temperature 0.1 with top_p 0.001) are VLMEvalKit model arguments to give in
its model config. VLMEvalKit is not a dependency of this package; nothing here imports it until used.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from onethinker_verl.data.prompts import PromptTemplates, load_templates
from onethinker_verl.reward.parsing import extract_answer

def extract_vlmevalkit_answer(response: str) -> str:
    """The stripped content of the first ``<answer>...</answer>``, else the whole response.

    The reference's VLMEvalKit fork then tries to unwrap ``\\boxed{...}``, but its helper is declared
    without ``self`` and called as a method, so the call raises; its vLLM path catches that and keeps
    the answer as it is. That effective behaviour is reproduced here.
    """
    answer = extract_answer(response)
    return answer if answer is not None else response


def task_for_dataset(dataset: str | None, dataset_type: str | None) -> str:
    """The OneThinker task whose instruction a VLMEvalKit dataset gets."""
    if dataset_type in ("MCQ", "Y/N", "Video-MCQ"):
        return "multiple choice"
    if dataset and "math" in dataset.lower():
        return "math"
    return "open-ended"


def onethinker_instruction(task: str, data_type: str, templates: PromptTemplates) -> str:
    """The text appended to a question: the reasoning instruction, then the task's answer instruction."""
    return templates.instruction + "\n" + templates.task_instruction(task, data_type)


def make_model_class(family: str = "qwen3_vl"):
    """``OneThinkerChat``: VLMEvalKit's Qwen-VL chat model with OneThinker's prompt and extraction."""
    if family == "qwen3_vl":
        from vlmeval.vlm.qwen3_vl.model import Qwen3VLChat as Base
    else:
        from vlmeval.vlm.qwen2_vl.model import Qwen2VLChat as Base
    from vlmeval.dataset import DATASET_TYPE

    class OneThinkerChat(Base):
        def __init__(self, model_path: str, prompt_templates: str | None = None, **kwargs):
            kwargs.setdefault("max_new_tokens", 8192)
            kwargs.update(post_process=False, use_custom_prompt=False)
            super().__init__(model_path=model_path, **kwargs)
            self.templates = load_templates(prompt_templates)

        def generate_inner(self, message, dataset=None):
            data_type = "video" if any(item["type"] == "video" for item in message) else "image"
            task = task_for_dataset(dataset, DATASET_TYPE(dataset) if dataset else None)
            instruction = onethinker_instruction(task, data_type, self.templates)
            message = [dict(item) for item in message]
            last_text = max((i for i, item in enumerate(message) if item["type"] == "text"), default=None)
            if last_text is None:
                message.append({"type": "text", "value": instruction})
            else:
                message[last_text]["value"] = message[last_text]["value"] + "\n" + instruction
            return extract_vlmevalkit_answer(super().generate_inner(message, dataset=dataset))

    return OneThinkerChat


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, theirs = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m onethinker_verl.evaluate.vlmevalkit", description=__doc__.split("\n")[0])
    parser.add_argument("--vlmevalkit-dir", required=True, type=Path, help="VLMEvalKit checkout (holds run.py)")
    parser.add_argument("--model", required=True, help="checkpoint folder")
    parser.add_argument("--name", default="OneThinker", help="model name inside VLMEvalKit")
    parser.add_argument("--family", choices=("qwen3_vl", "qwen2_5_vl"), default="qwen3_vl")
    parser.add_argument("--prompt-templates", default=None, help="prompt template YAML (default: the training templates)")
    args = parser.parse_args(ours)
    try:
        from functools import partial

        from vlmeval.config import supported_VLM
    except ImportError as exc:
        parser.error(f"VLMEvalKit is not installed ({exc}); pip install -e {args.vlmevalkit_dir}")
    use_vllm = "--use-vllm" in theirs
    supported_VLM[args.name] = partial(make_model_class(args.family), model_path=args.model,
                                       prompt_templates=args.prompt_templates, use_vllm=use_vllm)
    sys.argv = [str(args.vlmevalkit_dir / "run.py"), "--model", args.name, *theirs]
    runpy.run_path(str(args.vlmevalkit_dir / "run.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
