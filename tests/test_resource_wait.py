"""While Ray cannot place a resource pool, verl's ``RayResourcePool.get_placement_groups`` blocks silently;
with the plugin loaded it warns what it waits for (asked vs available) until the placement succeeds.

A local Ray with 2 logical CPUs: one placement group takes both, so the pool's group (1 bundle of 1 CPU) stays
pending; after the warnings are checked the blocker is removed and the pool is placed.
"""

import logging
import tempfile
import threading
import time

import pytest

WAIT_TIMEOUT_S = 60
LOGGER = "onethinker_verl.resource_wait"


def _messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.fixture
def small_ray_cluster():
    import ray

    # a short temp dir of its own: Ray's socket paths must stay under 108 bytes
    with tempfile.TemporaryDirectory(prefix="ray_wait_") as temp_dir:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
        yield ray
        ray.shutdown()


def test_pending_placement_is_reported_until_placed(small_ray_cluster, caplog, monkeypatch):
    from ray.util.placement_group import placement_group, remove_placement_group
    from verl.single_controller.ray.base import RayResourcePool

    from onethinker_verl import resource_wait

    # installed by the plugin when verl imported the module, not by this test
    assert resource_wait._report_waits.__qualname__ in str(
        getattr(RayResourcePool.get_placement_groups, "__onethinker_wrapped__", ())
    )
    monkeypatch.setattr(resource_wait, "WARN_EVERY_S", 0.5)

    blocker = placement_group([{"CPU": 2}], strategy="STRICT_PACK", name="blocker")
    small_ray_cluster.get(blocker.ready(), timeout=WAIT_TIMEOUT_S)
    pool = RayResourcePool(process_on_nodes=[1], use_gpu=False, max_colocate_count=1, name_prefix="actor_pool")
    placed = {}
    with caplog.at_level(logging.INFO, logger=LOGGER):
        waiting = threading.Thread(target=lambda: placed.setdefault("pgs", pool.get_placement_groups()), daemon=True)
        waiting.start()
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while len(_messages(caplog, logging.WARNING)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting.is_alive()  # verl is still waiting: nothing was placed
        remove_placement_group(blocker)
        waiting.join(WAIT_TIMEOUT_S)
    assert not waiting.is_alive() and len(placed["pgs"]) == 1

    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) >= 2, warnings
    first = warnings[0]
    assert "for Ray to place 1 placement group(s) of resource pool 'actor_pool'" in first, first
    assert "(STRICT_PACK: 1 x {CPU 1})" in first and "asked in all: CPU 1" in first, first
    assert "the cluster has available/total: CPU 0/2" in first, first
    assert _messages(caplog, logging.INFO)[-1].startswith(
        "resource pool 'actor_pool' placed after"
    )
    # once placed, verl hands back the same groups without waiting and nothing more is reported
    count = len(_messages(caplog, logging.WARNING))
    assert pool.get_placement_groups() is not None
    time.sleep(1.0)
    assert len(_messages(caplog, logging.WARNING)) == count
