"""Reference-style OneThinker reward: the spec (shared/spec/rewards.md) written the slow, obvious way.

This is the yardstick for the fast implementation in ``onethinker_verl.reward``: the equivalence tests
compare the two item by item, and ``reward_throughput.py`` reports both speeds. It follows the spec
literally -- regexes as stated, a fresh ``RougeScorer`` per call, mathruler's ``grade_answer`` and
math_verify called in-process, torch float32 for regression, a full word-level edit-distance table --
and so it is slow, and unbounded on adversarial input (math_verify's timeouts need the main thread).
"""

from __future__ import annotations

import itertools
import json
import math
import re

import torch
from math_verify import parse as math_parse
from math_verify import verify as math_verify
from mathruler.grader import grade_answer
from rouge_score import rouge_scorer

ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
FORMAT_RE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)


def reference_extract(text):
    match = ANSWER_RE.search(text)
    return match.group(1).strip() if match else None


def reference_json(text):
    try:
        return json.loads(text)
    except Exception:
        return None


def reference_numeric(value, length):
    if not isinstance(value, list) or len(value) != length:
        return False
    try:
        for element in value:
            float(element)
    except Exception:
        return False
    return True


def reference_tiou(a, b):
    if not (reference_numeric(a, 2) and reference_numeric(b, 2)):
        return 0.0
    s1, e1, s2, e2 = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = max(e1, e2) - min(s1, s2)
    return inter / union if union > 1e-12 else 0.0


def reference_box_iou(a, b):
    if not (reference_numeric(a, 4) and reference_numeric(b, 4)):
        return 0.0
    ax1, ay1, ax2, ay2 = map(float, a)
    bx1, by1, bx2, by2 = map(float, b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = max(0.0, ax2 - ax1) * max(0.0, ay2 - ay1) + max(0.0, bx2 - bx1) * max(0.0, by2 - by1) - inter
    return inter / union if union > 1e-12 else 0.0


def reference_points_ok(points):
    return isinstance(points, list) and len(points) == 3 and all(reference_numeric(p, 2) for p in points)


def reference_point_similarity(pred, gt, sigma=50.0):
    sums = []
    for perm in itertools.permutations(range(3)):
        distances = [math.hypot(float(pred[perm[i]][0]) - float(gt[i][0]), float(pred[perm[i]][1]) - float(gt[i][1])) for i in range(3)]
        if not any(math.isinf(d) for d in distances):
            sums.append(distances[0] + distances[1] + distances[2])
    best = math.inf
    for total in sums:  # a NaN sum never becomes the minimum
        best = min(best, total)
    if math.isinf(best):
        return 0.0
    d = best / 3.0
    return max(0.0, min(1.0, math.exp(-(d**2) / (2 * sigma**2))))


def reference_wer(reference, hypothesis):
    r, h = reference.split(), hypothesis.split()
    table = [[0] * (len(h) + 1) for _ in range(len(r) + 1)]
    for i in range(len(r) + 1):
        table[i][0] = i
    for j in range(len(h) + 1):
        table[0][j] = j
    for i in range(1, len(r) + 1):
        for j in range(1, len(h) + 1):
            cost = 0 if r[i - 1] == h[j - 1] else 1
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
    return table[len(r)][len(h)] / max(1, len(r))


def reference_structure(answer, gt, data_type, problem_type):
    pred = reference_json(answer)
    if problem_type in ("spatial-temporal grounding", "tracking"):
        ok = isinstance(pred, dict) and isinstance(pred.get("boxes"), dict)
        ok = ok and all(reference_numeric(v, 4) for v in pred["boxes"].values())
        if problem_type == "spatial-temporal grounding":
            ok = ok and isinstance(pred.get("time"), list) and len(pred["time"]) == 2
        bonus = 0.25 if ok else 0.0
        truth = reference_json(gt)
        if isinstance(pred, dict) and isinstance(truth, dict):
            pb, gb = pred.get("boxes", {}), truth.get("boxes", {})
            if isinstance(pb, dict) and isinstance(gb, dict) and len(gb) > 0:
                ratio = len(set(pb) & set(gb)) / len(gb)
                bonus += 0.25 * max(0.0, min(1.0, ratio))
        return bonus
    if problem_type == "temporal grounding":
        return 0.5 if isinstance(pred, dict) and reference_numeric(pred.get("time"), 2) else 0.0
    if problem_type == "spatial grounding":
        return 0.5 if isinstance(pred, dict) and reference_numeric(pred.get("boxes"), 4) else 0.0
    if problem_type == "segmentation":
        if data_type not in ("image", "video"):
            return 0.0
        ok = (
            isinstance(pred, dict)
            and reference_numeric(pred.get("boxes"), 4)
            and reference_points_ok(pred.get("positive_points"))
            and reference_points_ok(pred.get("negative_points"))
        )
        if data_type == "video":
            ok = ok and isinstance(pred.get("time"), (int, float))
        return 0.5 if ok else 0.0
    return 0.5


def reference_accuracy(answer, gt, data_type, problem_type):
    if problem_type == "multiple choice":
        return 1.0 if grade_answer(answer.strip(), gt.strip()) else 0.0
    if problem_type in ("numerical", "regression"):
        try:
            p, g = float(answer.replace(",", "")), float(gt.replace(",", ""))
        except ValueError:
            return 0.0
        if problem_type == "numerical":
            return 1.0 if round(p, 2) == round(g, 2) else 0.0
        pt, gtt = torch.tensor(p, dtype=torch.float32), torch.tensor(g, dtype=torch.float32)
        error = torch.abs(pt - gtt) / (torch.abs(gtt) + 1e-8)
        thresholds = torch.arange(0.5, 0.95 + 0.025, 0.05, dtype=torch.float32)
        return (error < (1 - thresholds)).float().mean().item()
    if problem_type == "ocr":
        return max(0.0, min(1.0, 1.0 - reference_wer(gt, answer)))
    if problem_type == "open-ended":
        scores = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True).score(gt, answer)
        return max(0.0, min(1.0, (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3.0))
    if problem_type == "math":
        try:
            return 1.0 if math_verify(math_parse(gt), math_parse(answer)) else 0.0
        except Exception:
            return 1.0 if grade_answer(answer, gt) else 0.0
    pred, truth = reference_json(answer), reference_json(gt)
    if problem_type not in ("temporal grounding", "spatial grounding", "spatial-temporal grounding", "tracking", "segmentation"):
        return 0.0
    if not (isinstance(pred, dict) and isinstance(truth, dict)):
        return 0.0
    if problem_type == "temporal grounding":
        return reference_tiou(pred.get("time"), truth.get("time"))
    if problem_type == "spatial grounding":
        return reference_box_iou(pred.get("boxes"), truth.get("boxes"))
    pb, gb = pred.get("boxes"), truth.get("boxes")
    if problem_type == "spatial-temporal grounding":
        m = 0.0
        if isinstance(pb, dict) and isinstance(gb, dict):
            common = [k for k in pb if k in gb]
            m = sum(reference_box_iou(pb[k], gb[k]) for k in common) / len(common) if common else 0.0
        return 0.5 * reference_tiou(pred.get("time"), truth.get("time")) + 0.5 * m
    if problem_type == "tracking":
        if not (isinstance(pb, dict) and isinstance(gb, dict)) or not gb:
            return 0.0
        return sum(reference_box_iou(pb.get(k, []), gb[k]) for k in gb) / len(gb)
    # segmentation
    iou = reference_box_iou(pred.get("boxes"), truth.get("boxes"))
    for key in ("positive_points", "negative_points"):
        if not (reference_points_ok(pred.get(key)) and reference_points_ok(truth.get(key))):
            return 0.0
    pos = reference_point_similarity(pred["positive_points"], truth["positive_points"])
    neg = reference_point_similarity(pred["negative_points"], truth["negative_points"])
    if data_type == "image":
        return 0.5 * iou + 0.25 * pos + 0.25 * neg
    if data_type == "video":
        tp, tg = pred.get("time"), truth.get("time")
        if not (isinstance(tp, (int, float)) and isinstance(tg, (int, float))):
            return 0.0
        return 0.3 * iou + 0.3 * math.exp(-abs(float(tp) - float(tg)) / 2) + 0.2 * pos + 0.2 * neg
    return 0.0


def reference_score(response, ground_truth, problem_type, data_type, format_weight=0.1):
    """The spec's per-item reward: dict with ``score``, ``format``, ``accuracy``, ``structure``."""
    try:
        response = re.sub(r"\s*(<|>|/)\s*", r"\1", response)
        inner = reference_extract(ground_truth)
        gt = inner if inner else ground_truth
        problem_type, data_type = problem_type.lower(), data_type.lower()
        fmt = 1.0 if FORMAT_RE.fullmatch(response) else 0.0
        answer = reference_extract(response)
        structure = reference_structure(answer or "", gt, data_type, problem_type)
        accuracy = reference_accuracy(answer or response.strip(), gt, data_type, problem_type)
        accuracy = 0.0 if math.isnan(accuracy) else min(max(accuracy, 0.0), 1.0)  # the spec's range
        if fmt == 0:
            structure = 0.0
        return {
            "score": (1 - format_weight) * accuracy + format_weight * fmt + structure,
            "format": fmt,
            "accuracy": accuracy,
            "structure": structure,
        }
    except Exception:
        return {"score": 0.0, "format": 0.0, "accuracy": 0.0, "structure": 0.0}
