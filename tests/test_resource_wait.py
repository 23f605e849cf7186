"""While Ray cannot place a resource pool, verl's ``RayResourcePool.get_placement_groups`` blocks silently;
with the plugin loaded it warns what it waits for (asked vs available) until the placement succeeds.

A local Ray with 2 logical CPUs: one placement group takes both, so the pool's group (1 bundle of 1 CPU) stays
pending; after the warnings are checked the blocker is removed and the pool is placed. The scenario runs in a
process of its own: the test session may already hold a Ray cluster (the TransferQueue fixture), and a process
joins one Ray cluster only.
"""

import json
import subprocess
import sys

# Runs the scenario and prints, as JSON on its last line, what the plugin logged and what verl returned.
SCENARIO = r"""
import json, logging, sys, tempfile, threading, time

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from verl.single_controller.ray.base import RayResourcePool

from onethinker_verl import resource_wait

WAIT_TIMEOUT_S = 60
records = []


class Recorder(logging.Handler):
    def emit(self, record):
        records.append((record.levelno, record.getMessage()))


logger = logging.getLogger("onethinker_verl.resource_wait")
logger.addHandler(Recorder())
logger.setLevel(logging.INFO)
resource_wait.WARN_EVERY_S = 0.5


def warnings():
    return [message for level, message in records if level == logging.WARNING]


report = {
    # installed by the plugin when verl imported the module, not by this scenario
    "installed": resource_wait._report_waits.__qualname__ in str(
        getattr(RayResourcePool.get_placement_groups, "__onethinker_wrapped__", ())),
}
# a short temp dir of its own: Ray's socket paths must stay under 108 bytes
with tempfile.TemporaryDirectory(prefix="ray_wait_") as temp_dir:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    blocker = placement_group([{"CPU": 2}], strategy="STRICT_PACK", name="blocker")
    ray.get(blocker.ready(), timeout=WAIT_TIMEOUT_S)
    pool = RayResourcePool(process_on_nodes=[1], use_gpu=False, max_colocate_count=1, name_prefix="actor_pool")
    placed = {}
    waiting = threading.Thread(target=lambda: placed.setdefault("pgs", pool.get_placement_groups()), daemon=True)
    waiting.start()
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while len(warnings()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    report["waiting_while_blocked"] = waiting.is_alive()  # verl is still waiting: nothing was placed
    remove_placement_group(blocker)
    waiting.join(WAIT_TIMEOUT_S)
    report["waiting_after_release"] = waiting.is_alive()
    report["groups_placed"] = len(placed.get("pgs") or [])
    report["warnings"] = warnings()
    report["infos"] = [message for level, message in records if level == logging.INFO]
    # once placed, verl hands back the same groups without waiting and nothing more is reported
    report["second_call_returned"] = pool.get_placement_groups() is not None
    time.sleep(1.0)
    report["warnings_after_placed"] = len(warnings())
    ray.shutdown()
print(json.dumps(report))
"""


def test_pending_placement_is_reported_until_placed():
    done = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["installed"]
    assert report["waiting_while_blocked"] and not report["waiting_after_release"]
    assert report["groups_placed"] == 1

    warnings = report["warnings"]
    assert len(warnings) >= 2, warnings
    first = warnings[0]
    assert "for Ray to place 1 placement group(s) of resource pool 'actor_pool'" in first, first
    assert "(STRICT_PACK: 1 x {CPU 1})" in first and "asked in all: CPU 1" in first, first
    assert "the cluster has available/total: CPU 0/2" in first, first
    assert report["infos"][-1].startswith("resource pool 'actor_pool' placed after")
    assert report["second_call_returned"] and report["warnings_after_placed"] == len(warnings)
