"""Realistic rollout groups for every OneThinker task: a ground truth and 8 responses per prompt.

Responses carry a few hundred words of thinking text and an answer that is right, nearly right, wrong or
malformed (missing or spaced-out tags, truncated JSON, strings or NaN in coordinate lists, extra frames,
prose instead of JSON, ...). Used by the reward equivalence tests and by ``reward_throughput.py``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

TASKS = (
    ("multiple choice", "image"),
    ("numerical", "video"),
    ("regression", "image"),
    ("OCR", "image"),
    ("open-ended", "video"),
    ("math", "image"),
    ("temporal grounding", "video"),
    ("spatial grounding", "image"),
    ("spatial-temporal grounding", "video"),
    ("tracking", "video"),
    ("segmentation", "image"),
    ("segmentation", "video"),
)

WORDS = (
    "the a of frame object person moves left right towards camera scene first then after before because "
    "so therefore we see notice looking carefully at image video region box red blue car dog running "
    "jumping standing table chair window light shadow count number total answer option seems likely "
    "however but also which where when between during around near far top bottom center edge corner "
    "measure estimate length width height distance second minute start end appears disappears again"
).split()


@dataclass(frozen=True)
class Item:
    response: str
    ground_truth: str
    problem_type: str
    data_type: str


def thinking(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def wrap(rng: random.Random, answer: str, think_words: int) -> str:
    """Wrap an answer in a response; about one in six is malformed around the tags."""
    think = thinking(rng, think_words)
    style = rng.random()
    if style < 0.72:
        return f"<think>{think}</think>\n<answer>{answer}</answer>"
    if style < 0.78:
        return f"< think >{think}< / think > <answer > {answer} </ answer>"
    if style < 0.83:
        return f"{think}\n<answer>{answer}</answer>"
    if style < 0.87:
        return f"<think>{think}</think> The answer is {answer}"
    if style < 0.90:
        return f"<think>{think}</think><answer>{answer}</answer><answer>{answer}</answer>"
    if style < 0.93:
        return f"<think>{think}</think><answer></answer>"
    if style < 0.96:
        return f"<think>{think}</think><answer>{answer}"
    return f"<think>{think}"


def _jitter(rng: random.Random, values, scale):
    return [round(v + rng.uniform(-scale, scale), rng.choice((0, 1, 2))) for v in values]


def _box(rng: random.Random):
    x, y = rng.uniform(0, 800), rng.uniform(0, 800)
    return [round(x), round(y), round(x + rng.uniform(20, 200)), round(y + rng.uniform(20, 200))]


def _points(rng: random.Random):
    return [[rng.randint(0, 1000), rng.randint(0, 1000)] for _ in range(3)]


def _corrupt_json(rng: random.Random, obj) -> str:
    text = json.dumps(obj)
    kind = rng.randrange(7)
    if kind == 0:
        return text[: rng.randrange(1, len(text))]
    if kind == 1:
        return text.replace("[", '["', 1)
    if kind == 2:
        return text.replace("]", ", NaN]", 1)
    if kind == 3:
        return "The box is " + text
    if kind == 4:
        return json.dumps([obj])
    if kind == 5:
        return text.replace("boxes", "box").replace("time", "t")
    return text.replace(",", ", \"x\",", 1)


def _grounding_answer(rng: random.Random, truth: dict, perturb) -> str:
    roll = rng.random()
    if roll < 0.2:
        return json.dumps(truth)
    if roll < 0.8:
        return json.dumps(perturb(truth))
    return _corrupt_json(rng, perturb(truth))


def make_group(rng: random.Random, problem_type: str, data_type: str, think_words: int = 200) -> list[Item]:
    """One prompt's ground truth and 8 responses."""
    answers: list[str]
    if problem_type == "multiple choice":
        letter = rng.choice("ABCDE")
        truth = letter if rng.random() < 0.7 else f"<answer>{letter}</answer>"
        options = [letter, letter, letter.lower(), rng.choice("ABCDE"), rng.choice("ABCDE"), f"({rng.choice('ABCD')})",
                   f"{letter}. {rng.choice(WORDS)} {rng.choice(WORDS)}", rng.choice(("E", "A", "", "None of them", "B)"))]
        answers = [rng.choice(options) for _ in range(8)]
    elif problem_type == "numerical":
        value = round(rng.uniform(0, 5000), rng.choice((0, 1, 2)))
        truth = f"{value:,}" if rng.random() < 0.2 else str(value)
        answers = [rng.choice((str(value), f"{value:.2f}", str(round(value + rng.uniform(-2, 2), 1)), f"{value:,}", "about " + str(value), "nan"))
                   for _ in range(8)]
    elif problem_type == "regression":
        value = round(rng.uniform(0.5, 300), 2)
        truth = str(value)
        answers = [rng.choice((str(round(value * rng.uniform(0.4, 1.6), 2)), str(value), str(value * 0.75), "inf", "-" + str(value), "many"))
                   for _ in range(8)]
    elif problem_type == "OCR":
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 25))]
        truth = " ".join(words)
        answers = []
        for _ in range(8):
            edited = [w for w in words if rng.random() > 0.15]
            edited = [rng.choice(WORDS) if rng.random() < 0.1 else w for w in edited]
            answers.append(" ".join(edited) if rng.random() < 0.9 else thinking(rng, 60))
    elif problem_type == "open-ended":
        truth = thinking(rng, rng.randint(15, 60))
        base = truth.split()
        answers = [" ".join(w for w in base if rng.random() > 0.3) + " " + thinking(rng, rng.randint(0, 40)) for _ in range(8)]
    elif problem_type == "math":
        kind = rng.random()
        if kind < 0.6:
            value = rng.randint(-50, 500)
            truth = str(value)
            options = [str(value), str(value), str(value + rng.choice((1, -1, 10))), f"\\boxed{{{value}}}", f"x = {value}", str(value) + ".0"]
        elif kind < 0.85:
            p, q = rng.randint(1, 9), rng.randint(2, 12)
            truth = f"\\frac{{{p}}}{{{q}}}"
            options = [truth, truth, f"{p}/{q}", f"\\frac{{{p + 1}}}{{{q}}}", str(round(p / q, 3)), f"\\dfrac{{{p}}}{{{q}}}"]
        else:
            a = rng.randint(2, 9)
            truth = rng.choice((f"\\sqrt{{{a}}}", f"{a}\\pi", f"x^2+{a}", f"(1,{a})"))
            options = [truth, truth, f"{a}", f"\\sqrt{{{a + 1}}}", "x^2", f"{a}pi"]
        answers = [rng.choice(options) for _ in range(8)]
    elif problem_type == "temporal grounding":
        start = round(rng.uniform(0, 100), 1)
        truth_obj = {"time": [start, round(start + rng.uniform(1, 40), 1)]}
        truth = json.dumps(truth_obj)
        answers = [_grounding_answer(rng, truth_obj, lambda t: {"time": _jitter(rng, t["time"], 8)}) for _ in range(8)]
    elif problem_type == "spatial grounding":
        truth_obj = {"boxes": _box(rng)}
        truth = json.dumps(truth_obj)
        answers = [_grounding_answer(rng, truth_obj, lambda t: {"boxes": _jitter(rng, t["boxes"], 30)}) for _ in range(8)]
    elif problem_type in ("spatial-temporal grounding", "tracking"):
        frames = sorted(rng.sample(range(0, 64), rng.randint(3, 12)))
        boxes = {str(f): _box(rng) for f in frames}
        truth_obj = {"boxes": boxes}
        if problem_type == "spatial-temporal grounding":
            truth_obj["time"] = [frames[0] / 2, frames[-1] / 2]

        def perturb(t):
            frames_kept = {k: _jitter(rng, v, 25) for k, v in t["boxes"].items() if rng.random() > 0.2}
            if rng.random() < 0.3:
                frames_kept[str(rng.randint(64, 80))] = _box(rng)
            out = {"boxes": frames_kept}
            if "time" in t:
                out["time"] = _jitter(rng, t["time"], 3)
            return out

        truth = json.dumps(truth_obj)
        answers = [_grounding_answer(rng, truth_obj, perturb) for _ in range(8)]
    elif problem_type == "segmentation":
        truth_obj = {"boxes": _box(rng), "positive_points": _points(rng), "negative_points": _points(rng)}
        if data_type == "video":
            truth_obj["time"] = round(rng.uniform(0, 30), 1)

        def perturb(t):
            out = {"boxes": _jitter(rng, t["boxes"], 30),
                   "positive_points": [_jitter(rng, p, 60) for p in t["positive_points"]],
                   "negative_points": [_jitter(rng, p, 60) for p in t["negative_points"]][: rng.choice((2, 3, 3, 3))]}
            if "time" in t:
                out["time"] = rng.choice((t["time"] + rng.uniform(-3, 3), str(t["time"]), [t["time"]], t["time"]))
            return out

        truth = json.dumps(truth_obj)
        answers = [_grounding_answer(rng, truth_obj, perturb) for _ in range(8)]
    else:
        raise ValueError(f"unknown problem type {problem_type!r}")
    return [Item(wrap(rng, answer, think_words), truth, problem_type, data_type) for answer in answers]


def make_batch(groups_per_task: int, seed: int = 0, think_words: int = 200) -> list[Item]:
    """``groups_per_task`` rollout groups of 8 for every task, in prompt order (as verl scores them)."""
    rng = random.Random(seed)
    batch: list[Item] = []
    for _ in range(groups_per_task):
        for problem_type, data_type in TASKS:
            batch.extend(make_group(rng, problem_type, data_type, think_words))
    return batch
