"""Benchmark files as ``data.val_files``: the benchmark's reference metrics appear in verl's validation
metrics per benchmark. Rows go through the raw-corpus conversion, the ``onethinker`` reward manager built
by verl's factory, the reward loop's column assembly, and verl's ``process_validation_metrics``."""

import asyncio
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import verl  # noqa: F401  (loads the onethinker plugin)
from verl.trainer.ppo.metric_utils import process_validation_metrics

from conftest import train_tokenizer
from onethinker_verl.data.prompts import load_templates
from onethinker_verl.data.raw_corpus import convert_raw_corpus
from onethinker_verl.evaluate.reference.outputs import BenchmarkOutput, score_benchmark
from onethinker_verl.benchmark_scoring.validation import BENCHMARK_KEYS
from test_reward_manager import load_manager, make_item

THINK = "<think>look</think>"
ROWS = [
    ({"problem": "Colour?", "options": ["A. red", "B. blue"], "solution": "<answer>A</answer>",
      "problem_type": "multiple choice", "data_type": "image", "path": "a.png"}, f"{THINK}<answer>(A)</answer>"),
    ({"problem": "Colour?", "options": ["A. red", "B. blue"], "solution": "<answer>B</answer>",
      "problem_type": "multiple choice", "data_type": "image", "path": "a.png"}, f"{THINK}<answer>B</answer>"),
    ({"problem": "When?", "solution": '{"time": [0, 10]}', "problem_type": "temporal grounding",
      "data_type": "video", "path": "v.mp4"}, THINK + '<answer>{"time": [0, 5]}</answer>'),
    ({"problem": "When?", "solution": '{"time": [0, 10]}', "problem_type": "temporal grounding",
      "data_type": "video", "path": "v.mp4"}, THINK + '<answer>{"time": [2, 10]}</answer>'),
    ({"problem": "Track it.", "solution": '{"boxes": {"1": [0, 0, 10, 10], "2": [0, 0, 10, 10]}}',
      "problem_type": "tracking", "data_type": "video", "path": "v.mp4"}, THINK + '<answer>{"boxes": {"1": [0, 0, 10, 10]}}</answer>'),
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([response for _, response in ROWS] + [row["problem"] for row, _ in ROWS])


def test_benchmark_metrics_in_verls_validation_metrics(tmp_path, tokenizer):
    benchmark_file = tmp_path / "eval_tinybench.json"
    benchmark_file.write_text(json.dumps([{**row, "problem_id": i} for i, (row, _) in enumerate(ROWS)]))
    training_file = tmp_path / "train_rows.json"
    training_file.write_text(json.dumps([{**ROWS[0][0], "problem_id": "t"}]))
    converted = [pq.read_table(convert_raw_corpus(str(path), str(tmp_path / "cache"), load_templates())).to_pylist()
                 for path in (benchmark_file, training_file)]
    benchmark_rows, training_rows = converted
    assert {row["data_source"] for row in benchmark_rows} == {"tinybench"}
    assert {row["extra_info"]["benchmark"] for row in benchmark_rows} == {"tinybench"}
    assert training_rows[0]["extra_info"]["benchmark"] is None
    assert training_rows[0]["data_source"].startswith("onethinker/")

    manager = load_manager(tokenizer)
    items = [(row, response) for row, (_, response) in zip(benchmark_rows, ROWS)] + [(training_rows[0], ROWS[0][1])]
    infos, data_sources = [], []
    for index, (row, response) in enumerate(items):
        item = make_item(tokenizer, response, row["reward_model"]["ground_truth"], row["extra_info"]["problem_type"],
                         data_type=row["extra_info"]["data_type"], uid=f"uid-{index}", data_source=row["data_source"])
        item.non_tensor_batch["extra_info"][0] = row["extra_info"]
        infos.append(asyncio.run(manager.run_single(item))["reward_extra_info"])
        data_sources.append(row["data_source"])
    # verl's reward loop takes the first item's keys for every item: all must carry the same keys
    assert all(set(info) == set(infos[0]) for info in infos) and set(BENCHMARK_KEYS) <= set(infos[0])
    assert all(infos[-1][key] is None for key in BENCHMARK_KEYS)  # the training row carries no benchmark metrics
    columns = {key: np.array([info[key] for info in infos], dtype=object).tolist() for key in infos[0]}
    metrics = process_validation_metrics(data_sources, [f"uid-{i}" for i in range(len(items))], columns)

    # the reference's own metrics of the same outputs, from the reference-format scorer
    outputs = [{**row, "output": response} for row, response in ROWS]
    expected = score_benchmark(BenchmarkOutput("tinybench", outputs)).metrics
    assert expected["multiple choice/acc"] == 0.5  # "(A)" fails the reference's first-character check
    assert expected["temporal grounding/tiou/R@0.7"] == 0.5  # tIoU 0.5 and 0.8
    validation = metrics["tinybench"]
    for name, value in expected.items():
        # the task part in the canonical task name: "temporal grounding/tiou/R@0.7" -> "temporal_grounding/..."
        assert validation[f"bench/{name.replace(' ', '_')}"]["mean@1"] == pytest.approx(value), name
    assert "bench/overall/acc" not in metrics[data_sources[-1]]  # all None for the training row
    # the training reward (tag-normalised, grade_answer) still scores "(A)" correct: both are reported
    assert validation["accuracy"]["mean@1"] > expected["overall/acc"]
