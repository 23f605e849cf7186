"""Model-based open-ended scoring against a real HTTP server on 127.0.0.1.

The server stands in for verl's reward router in front of a vLLM pooling server: it answers
``POST /pooling`` with per-token rewards, or fails with HTTP 500, or stalls past the client's timeout.
The manager is the registered class built by verl's ``load_reward_manager`` / ``RewardLoopWorker``.
"""

import asyncio
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import compose_recipe
from test_reward_manager import (
    CASES,
    OPEN_GT,
    THINK,
    canned_texts,
    load_manager,
    make_item,
    manager_overrides,
    rouge_accuracy,
    train_tokenizer,
)
from verl import DataProto

# The test template makes the server's job easy: the output is what follows "O:".
TEST_TEMPLATE = "Q:{question}|R:{reference}|O:{output}"
MODEL_PATH_NAME = "tiny-polar"


class FakeRewardServer:
    """Threaded HTTP server scoring each text by a lookup on its output part; records every request."""

    def __init__(self, scores_by_output: dict[str, float]):
        self.scores_by_output = scores_by_output
        self.mode = "answer"  # or "error" (HTTP 500) or "stall" (sleep past the client timeout)
        self.stall_s = 3.0
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, **body})
                if server.mode == "error":
                    self.send_error(500, "model crashed")
                    return
                if server.mode == "stall":
                    time.sleep(server.stall_s)
                outputs = [text.split("|O:", 1)[1] for text in body["input"]]
                data = [
                    # vLLM pooling: one reward per token, the last one is the sequence's
                    {"index": i, "object": "pooling", "data": [[-99.0], [server.scores_by_output[output]]]}
                    for i, output in enumerate(outputs)
                ]
                payload = json.dumps({"object": "list", "data": data}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (stall mode)
                    pass

            def log_message(self, *args):  # keep pytest output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


ANSWERS = {f"answer number {i}": 0.1 * i for i in range(1, 7)}


def open_ended_items(tokenizer):
    return [
        make_item(tokenizer, f"{THINK}<answer>{answer}</answer>", f"<answer>{OPEN_GT}</answer>", "open-ended", uid="g")
        for answer in ANSWERS
    ]


def model_scoring_overrides(**settings) -> list[str]:
    values = {"enable": "true", "batch_size": 4, "batch_wait_s": 0.2, "timeout_s": 1.0}
    values.update(settings)
    overrides = [f"++reward.reward_manager.model_scoring.{key}={value}" for key, value in values.items()]
    return overrides + [f"++reward.reward_manager.model_scoring.prompt_template='{TEST_TEMPLATE}'"]


def score_concurrently(manager, items):
    """All items in flight at once, as the reward loop's ``compute_score_batch`` / agent loop do."""

    async def main():
        return await asyncio.gather(*(manager.run_single(item) for item in items))

    return asyncio.run(main())


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(canned_texts() + [f"<answer>{answer}</answer>" for answer in ANSWERS])


def test_open_ended_scored_by_model_in_batches(tokenizer):
    items = open_ended_items(tokenizer) + [make_item(tokenizer, *CASES["mc_correct"][:3])]
    with FakeRewardServer(ANSWERS) as server:
        manager = load_manager(
            tokenizer,
            *model_scoring_overrides(),
            f"reward.reward_model.model_path={MODEL_PATH_NAME}",
            reward_router_address=server.address,
        )
        results = score_concurrently(manager, items)

    # six open-ended items with batch_size 4: one full batch and one partial batch; the MC item is not sent
    assert sorted(len(request["input"]) for request in server.requests) == [2, 4]
    assert all(request["path"] == "/pooling" and request["model"] == MODEL_PATH_NAME for request in server.requests)
    sent = [text for request in server.requests for text in request["input"]]
    assert f"Q:What happens in the video?|R:{OPEN_GT}|O:answer number 3" in sent

    for (_answer, model_score), result in zip(ANSWERS.items(), results[:6], strict=True):
        info = result["reward_extra_info"]
        assert info["model_score"] == pytest.approx(model_score)
        assert info["model_score_fallback"] == 0.0
        assert info["accuracy"] == pytest.approx(model_score)
        assert info["accuracy/open_ended"] == pytest.approx(model_score)
        # (1 - 0.1) * accuracy + 0.1 * format + structure, well formatted
        assert result["reward_score"] == pytest.approx(0.9 * model_score + 0.6)
    mc_info = results[6]["reward_extra_info"]
    assert results[6]["reward_score"] == pytest.approx(1.5)
    assert mc_info["model_score"] is None and mc_info["model_score_fallback"] is None


@pytest.mark.parametrize("mode", ["error", "stall"])
def test_failed_batch_falls_back_to_rouge(tokenizer, caplog, mode):
    items = open_ended_items(tokenizer)[:3]
    with FakeRewardServer(ANSWERS) as server:
        server.mode = mode
        manager = load_manager(
            tokenizer, *model_scoring_overrides(timeout_s=0.5), reward_router_address=server.address
        )
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="onethinker_verl.reward.model_scoring"):
            results = score_concurrently(manager, items)
        elapsed = time.monotonic() - started

    assert len(server.requests) == 1  # one batch of three
    assert elapsed < server.stall_s  # a stalled server costs the timeout, not the stall
    for answer, result in zip(ANSWERS, results, strict=False):
        info = result["reward_extra_info"]
        rouge = rouge_accuracy(OPEN_GT, answer)
        assert info["model_score"] is None
        assert info["model_score_fallback"] == 1.0
        assert info["accuracy"] == pytest.approx(rouge)
        assert result["reward_score"] == pytest.approx(0.9 * rouge + 0.6)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "batch of 3" in warnings[0].getMessage()


def test_unreachable_server_falls_back(tokenizer):
    with FakeRewardServer(ANSWERS) as server:
        address = server.address
    manager = load_manager(tokenizer, *model_scoring_overrides(), reward_router_address=address)
    (result,) = score_concurrently(manager, open_ended_items(tokenizer)[:1])
    assert result["reward_extra_info"]["model_score_fallback"] == 1.0


def test_reward_loop_worker_routes_through_manager_with_reward_model(tokenizer, tmp_path):
    """With ``reward.reward_model.enable=true`` verl's worker bypasses every reward manager unless
    ``reward.custom_reward_function.path`` is set; with it, the worker hands the router address to the
    manager, which scores open-ended items with the model."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer.save_pretrained(tokenizer_dir)
    with FakeRewardServer(ANSWERS) as server:
        config = compose_recipe(
            *manager_overrides(tokenizer_path=tokenizer_dir),
            *model_scoring_overrides(batch_size=64),
            "reward.reward_model.enable=true",
            f"reward.reward_model.model_path={tokenizer_dir}",
            "reward.custom_reward_function.path=pkg://onethinker_verl.reward",
            "reward.custom_reward_function.name=compute_score",
        )
        worker = RewardLoopWorker(config, reward_router_address=server.address)
        data = DataProto.concat(open_ended_items(tokenizer)[:2])
        outputs = asyncio.run(worker.compute_score_batch(data))
    assert len(server.requests) == 1 and len(server.requests[0]["input"]) == 2
    assert [output["reward_extra_info"]["model_score"] for output in outputs] == pytest.approx([0.1, 0.2])
    assert [output["reward_score"] for output in outputs] == pytest.approx([0.9 * 0.1 + 0.6, 0.9 * 0.2 + 0.6])


def test_normalize_within_groups_by_hand():
    from onethinker_verl.reward.model_scoring import normalize_within_groups

    scores = [1.0, 3.0, 2.0, 5.0, 5.0, -4.0]
    groups = ["a", "a", "a", "b", "b", "c"]
    # group a: z-scores -1.22, 1.22, 0 -> min-max 0, 1, 0.5; b and c have zero spread -> 1.0
    assert normalize_within_groups(scores, groups) == pytest.approx([0.0, 1.0, 0.5, 1.0, 1.0, 1.0])


def test_apply_group_normalization_rescores_model_scored_items_only():
    from onethinker_verl.reward.model_scoring import apply_group_normalization

    infos = {
        "task": ["open_ended", "open_ended", "open_ended", "multiple_choice"],
        "model_score": [-8.0, -2.0, None, None],  # third item fell back to ROUGE
        "model_score_fallback": [0.0, 0.0, 1.0, None],
        "accuracy": [-8.0, -2.0, 0.4, 1.0],
        "format": [1.0, 0.0, 1.0, 1.0],
        "structure": [0.5, 0.0, 0.5, 0.5],
        "score": [0.9 * -8.0 + 0.6, 0.9 * -2.0, 0.9 * 0.4 + 0.6, 1.5],
        "accuracy/open_ended": [-8.0, -2.0, 0.4, None],
        "score/open_ended": [0.9 * -8.0 + 0.6, 0.9 * -2.0, 0.9 * 0.4 + 0.6, None],
    }
    scores, updated = apply_group_normalization(infos, ["g", "g", "g", "h"], format_weight=0.1)
    # the two model-scored members of g normalise to 0 and 1; the ROUGE one and the MC item are untouched
    assert updated["accuracy"] == pytest.approx([0.0, 1.0, 0.4, 1.0])
    assert scores == pytest.approx([0.6, 0.9, 0.9 * 0.4 + 0.6, 1.5])
    assert updated["score"] == pytest.approx(scores)
    assert updated["accuracy/open_ended"][:3] == pytest.approx([0.0, 1.0, 0.4])
    assert updated["score/open_ended"][:2] == pytest.approx([0.6, 0.9])
    assert infos["accuracy"][0] == -8.0  # the input is not modified


@pytest.mark.parametrize(
    "reply",
    [
        {"data": [{"index": 0, "data": [[1.0]]}]},  # one score for two inputs
        {"data": [{"index": 0, "data": [[1.0]]}, {"index": 0, "data": [[2.0]]}]},  # repeated index
        {"data": [{"index": 0, "data": [[1.0]]}, {"index": 1, "data": [["x"]]}]},  # not a number
        {"data": [{"index": 0, "data": [[1.0]]}, {"index": 1, "data": [[float("nan")]]}]},
        {"error": "overloaded"},
    ],
)
def test_parse_scores_rejects_bad_payloads(reply):
    from onethinker_verl.reward.model_scoring import parse_scores

    with pytest.raises(ValueError):
        parse_scores(reply, expected=2)


def test_parse_scores_reads_pooling_and_classify_replies():
    from onethinker_verl.reward.model_scoring import parse_scores

    pooling = {"data": [{"index": 1, "data": [[0.0], [2.5]]}, {"index": 0, "data": [[0.0], [-1.5]]}]}
    classify = {"data": [{"index": 0, "probs": [0.2, 0.8]}, {"index": 1, "probs": [0.6, 0.4]}]}
    assert parse_scores(pooling, expected=2) == [-1.5, 2.5]
    assert parse_scores(classify, expected=2) == [0.8, 0.4]
