"""A test reward for the CPU loop: a random tiny model scores 0 under the OneThinker reward, and a constant
reward gives zero advantages, so nothing would train. This one is a fixed function of the response text that
varies between responses (so groups have a spread, EMA-GRPO moves and the actor's weights change)."""


def compute_score(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs):
    """Score in [0, 1): the byte sum of the response modulo 101, over 101; the OneThinker reward's parts."""
    accuracy = sum((solution_str or "").encode()) % 101 / 101
    return {"score": accuracy, "accuracy": accuracy, "format": 0.0, "structure": 0.0}
