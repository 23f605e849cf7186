"""The ``onethinker`` reward manager on verl 0.9.1's streaming reward path, and its cold start.

* Streaming: in the v1 trainer each rollout is scored inside the agent loop as soon as it finishes:
  ``AgentLoopWorker._compute_score`` builds a one-trajectory ``DataProto`` from the output and the dataset
  row's fields and awaits ``compute_score.remote`` on a ``RewardLoopWorker`` actor, which runs the manager.
  Here verl's own ``_compute_score`` and ``RewardLoopWorker`` run in this process; only the Ray actor handle
  is a stand-in that awaits the worker's method directly.
* Cold start: the manager warms the slow scoring paths when it is built (math checker worker, nltk), so the
  first scored item of a fresh process costs no more than later ones (timed in a fresh process started
  when this module starts).
"""

import asyncio
import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import verl  # noqa: F401  (loads the onethinker plugin, as every verl process does)

from conftest import REPO_ROOT, compose_recipe, train_tokenizer

THINK = "<think>Compare the frames.</think>"
TRACK_GT = json.dumps({"boxes": {"0": [0, 0, 10, 10], "1": [5, 0, 15, 10]}})
TRACK_ANSWER = json.dumps({"boxes": {"0": [0, 0, 10, 10], "1": [0, 0, 10, 10]}})

# argv: none. Times run_single on a fresh manager: the first math (LaTeX, bounded worker) and open-ended
# (ROUGE with nltk's stemmer) answers of the process, then later ones of the same kinds.
COLD_START_SCRIPT = textwrap.dedent(
    r"""
    import asyncio, json, sys, time
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import torch
    import verl
    from tensordict import TensorDict
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager
    from conftest import compose_recipe, train_tokenizer

    answers = {
        "math": [(f"\frac{{{k}}}{{{k + 1}}}", str(k / (k + 1))) for k in range(3, 7)],
        "open-ended": [(f"the person number {k} walks slowly home", f"someone walks home {k}") for k in range(4)],
    }
    response = "<think>t</think><answer>{}</answer>".format
    tokenizer = train_tokenizer([response(a) + " " + g for pairs in answers.values() for a, g in pairs])
    config = compose_recipe("reward.reward_manager.name=onethinker")
    start = time.perf_counter()
    manager = load_reward_manager(config, tokenizer, reward_router_address=None, reward_model_tokenizer=None)
    build_s = time.perf_counter() - start

    def item(problem_type, answer, truth):
        ids = torch.tensor([tokenizer(response(answer), add_special_tokens=False)["input_ids"]])
        batch = TensorDict({"responses": ids, "prompts": torch.ones(1, 4, dtype=torch.long),
                            "attention_mask": torch.ones(1, 4 + ids.shape[1], dtype=torch.long)}, batch_size=1)
        return DataProto(batch=batch, non_tensor_batch={
            "data_source": np.array(["cold"], dtype=object),
            "reward_model": np.array([{"ground_truth": truth}], dtype=object),
            "extra_info": np.array([{"problem_type": problem_type}], dtype=object)})

    seconds = {}
    for round_ in range(4):
        for problem_type, pairs in answers.items():
            data = item(problem_type, *pairs[round_])
            start = time.perf_counter()
            asyncio.run(manager.run_single(data))
            seconds.setdefault(problem_type, []).append(time.perf_counter() - start)
    print("COLD-START " + json.dumps({"build_s": build_s, "seconds": seconds}))
    """
)


@pytest.fixture(scope="module", autouse=True)
def cold_start_process(tmp_path_factory):
    """Started when the module starts; read by the cold-start test."""
    process = subprocess.Popen(
        [sys.executable, "-c", COLD_START_SCRIPT, str(REPO_ROOT / "tests")],
        cwd=tmp_path_factory.mktemp("cold"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_first_scored_item_of_a_process_costs_no_more_than_later_ones(cold_start_process):
    out, err = cold_start_process.communicate(timeout=300)
    lines = [line for line in out.splitlines() if line.startswith("COLD-START ")]
    assert cold_start_process.returncode == 0 and len(lines) == 1, err[-3000:]
    seconds = json.loads(lines[0][len("COLD-START "):])["seconds"]
    for problem_type, times in seconds.items():
        first, later = times[0], times[1:]
        # Unwarmed, the first math answer waited ~1 s for the worker and the first open-ended one ~0.9 s
        # for nltk; scoring itself takes milliseconds. The slack absorbs a busy machine.
        assert first <= 3 * max(later) + 0.1, (problem_type, times)


class InProcessActorHandle:
    """Stands in for the Ray actor handle of a ``RewardLoopWorker``: ``compute_score.remote(data)`` awaits the
    real worker's method in this process (what the Ray actor runs in its own)."""

    def __init__(self, worker):
        self.compute_score = SimpleNamespace(remote=worker.compute_score)


def test_agent_loops_streaming_reward_path_scores_with_the_onethinker_manager(tmp_path):
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput, AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from onethinker_verl.reward.manager import OneThinkerRewardManager

    right, wrong = f"{THINK}<answer>{TRACK_ANSWER}</answer>", f"{THINK}<answer>B</answer>"
    tokenizer = train_tokenizer([right, wrong, TRACK_GT, "Track the car."])
    tokenizer.save_pretrained(tmp_path)
    config = compose_recipe("reward.reward_manager.name=onethinker", f"actor_rollout_ref.model.path={tmp_path}")
    reward_worker = RewardLoopWorker(config, reward_router_address=None)  # as each reward actor builds it
    assert isinstance(reward_worker.reward_manager, OneThinkerRewardManager)

    # verl's AgentLoopWorker, minus its LLM server: what _compute_score reads of it.
    agent_worker = AgentLoopWorker.__new__(AgentLoopWorker)
    agent_worker.reward_loop_worker_handles = [InProcessActorHandle(reward_worker)]
    agent_worker.processor, agent_worker.tokenizer, agent_worker.mm_processor_kwargs = None, tokenizer, {}
    # The dataset row's fields, as the agent loop passes them on with each session.
    row = {
        "data_source": "onethinker",
        "reward_model": {"ground_truth": TRACK_GT},
        "extra_info": {"problem_type": "tracking", "data_type": "video", "index": 3},
        "raw_prompt": [{"role": "user", "content": "Track the car."}],
    }
    prompt_ids = tokenizer("Track the car.", add_special_tokens=False)["input_ids"]
    scored = {}
    for name, response in (("right", right), ("wrong", wrong)):
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        output = AgentLoopOutput(
            prompt_ids=prompt_ids, response_ids=response_ids, response_mask=[1] * len(response_ids),
            num_turns=2, metrics=AgentLoopMetrics(), extra_fields={},
        )
        asyncio.run(agent_worker._compute_score([output], kwargs=row))
        scored[name] = output

    # frame 0 IoU 1, frame 1 IoU 50/150: accuracy 2/3; overall 0.9 * 2/3 + 0.1 + 0.5 (format and structure)
    assert scored["right"].reward_score == pytest.approx(0.9 * 2 / 3 + 0.6)
    info = scored["right"].extra_fields["reward_extra_info"]
    assert info["task"] == "tracking" and info["accuracy"] == pytest.approx(2 / 3)
    assert info["accuracy/tracking"] == pytest.approx(2 / 3) and info["accuracy/multiple_choice"] is None
    # a non-JSON answer to a tracking question: format 1, accuracy 0, no structure credit
    assert scored["wrong"].extra_fields["reward_extra_info"]["accuracy"] == 0.0
    assert scored["wrong"].reward_score == pytest.approx(0.1)
    assert scored["right"].metrics.compute_score > 0  # verl timed the streaming call
    # Both carry the same keys, as verl's batching of reward_extra_info requires.
    assert scored["right"].extra_fields["reward_extra_info"].keys() == info.keys()
    assert np.isfinite(scored["wrong"].reward_score)
