"""Shared test helpers: compose verl's real Hydra config with the onethinker recipe."""

import os
import sys
from pathlib import Path

import pytest

# The same builders the CPU dry run uses: recipe composition, a tiny tokenizer, a real Qwen2-VL processor class.
from onethinker_verl.dry_run import compose_recipe, tiny_qwen_vl_processor, train_tokenizer  # noqa: F401

# Ray and verl print a lot on import; keep test logs readable and never try to reach a network service.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
# The literal reference implementations (reward, EMA-GRPO) live beside the benchmarks that time them.
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


def config_leaves(node, prefix=""):
    """Every leaf of a plain config container as {dotted key: value}."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(config_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def verl_config_dir() -> str:
    import verl

    return str(Path(verl.__file__).parent / "trainer" / "config")


@pytest.fixture
def recipe_config():
    return compose_recipe


@pytest.fixture(scope="session")
def ray_transfer_queue():
    """A local Ray cluster with verl's TransferQueue, as the v1 trainer runs it (started once per session)."""
    import ray
    import transfer_queue as tq

    # Logical CPUs: TransferQueue's controller and storage units each reserve one.
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    tq.init()
    yield tq
    tq.close()
    ray.shutdown()


@pytest.fixture
def transfer_queue(ray_transfer_queue):
    """TransferQueue with an empty ``train`` partition (tests share one session-wide instance)."""
    tq = ray_transfer_queue
    keys = list((tq.kv_list("train") or {}).get("train", {}))
    if keys:
        tq.kv_clear(keys=keys, partition_id="train")
    return tq


@pytest.fixture(scope="session")
def tiny_vl_checkpoint(tmp_path_factory):
    """``tiny_vl_checkpoint(family) -> Path``: a tiny random Qwen3-VL (``"qwen3_vl"``), Qwen2.5-VL
    (``"qwen2_5_vl"``) or Qwen2-VL (``"qwen2_vl"``) HF checkpoint folder with tokenizer and processor
    (onethinker_verl/tiny_model.py), built once per family per test session. Treat it as read-only; copy it
    to change it."""
    from onethinker_verl.tiny_model import build_tiny_vl_checkpoint

    built = {}

    def checkpoint(family: str = "qwen3_vl"):
        if family not in built:
            built[family] = build_tiny_vl_checkpoint(family, tmp_path_factory.mktemp(f"tiny_{family}"))
        return built[family]

    return checkpoint
