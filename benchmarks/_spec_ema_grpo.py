"""A literal, loop-over-samples reading of ../shared/spec/ema-grpo.md: the reference behaviour EMA-GRPO is
checked against (tests/test_ema_grpo.py) and the reference-style speed it is compared with
(benchmarks/ema_grpo.py)."""

import math
import statistics
from collections import defaultdict

import torch


class SpecEmaGrpo:
    """The reference behaviour of ../shared/spec/ema-grpo.md, written as literally as possible."""

    def __init__(self, decay=0.99, min_std=1e-3, eps=1e-6, guard=5.0, center=True):
        self.decay, self.min_std, self.eps, self.guard, self.center = decay, min_std, eps, guard, center
        self.moments = {}
        self.fallback_groups = 0

    @staticmethod
    def key(problem_type, data_type):
        if problem_type == "segmentation" and str(data_type).lower() in ("image", "video"):
            return f"segmentation/{str(data_type).lower()}"
        return problem_type

    def step(self, scores, uids, problem_types, data_types):
        keys = [self.key(p, d) for p, d in zip(problem_types, data_types)]
        for key in dict.fromkeys(keys):
            xs = [s for s, k in zip(scores, keys) if k == key]
            b1, b2 = sum(xs) / len(xs), sum(x * x for x in xs) / len(xs)
            if key in self.moments:
                m1, m2 = self.moments[key]
                self.moments[key] = (self.decay * m1 + (1 - self.decay) * b1, self.decay * m2 + (1 - self.decay) * b2)
            else:
                self.moments[key] = (b1, b2)
        sigma = {
            k: math.sqrt(max(max(m2 - m1 * m1, 0.0), self.min_std**2)) for k, (m1, m2) in self.moments.items()
        }
        members = defaultdict(list)
        for i, uid in enumerate(uids):
            members[uid].append(i)
        centred = list(scores)
        if self.center:
            for idxs in members.values():
                mean = sum(scores[i] for i in idxs) / len(idxs)
                for i in idxs:
                    centred[i] = scores[i] - mean
        advantages = [0.0] * len(scores)
        for key in dict.fromkeys(keys):
            for idxs in members.values():
                idxs = [i for i in idxs if keys[i] == key]
                if not idxs:
                    continue
                values = [centred[i] / (sigma[key] + self.eps) for i in idxs]
                if any(abs(v) > self.guard for v in values):
                    self.fallback_groups += 1
                    std = statistics.pstdev([scores[i] for i in idxs])
                    values = [centred[i] / (std + self.eps) for i in idxs]
                for i, v in zip(idxs, values):
                    advantages[i] = v
        return advantages

    def estimate(self, token_level_rewards, response_mask, index, extra_info):
        """One step as the reference runs it inside the trainer: outcome scores from the token rewards, the
        per-sample loop above, then the advantages broadcast over the response (advantages = returns)."""
        scores = token_level_rewards.sum(dim=-1).tolist()
        problem_types = [info["problem_type"] for info in extra_info]
        data_types = [info.get("data_type") for info in extra_info]
        advantages = self.step(scores, list(index), problem_types, data_types)
        per_sample = torch.tensor(advantages, dtype=token_level_rewards.dtype, device=token_level_rewards.device)
        advantages_tokens = per_sample.unsqueeze(-1) * response_mask
        return advantages_tokens, advantages_tokens
