"""Say what a run waits for while Ray cannot place its workers.

Wraps ``verl.single_controller.ray.base.RayResourcePool.get_placement_groups`` (verl 0.9.1). That method
creates one placement group per node of a resource pool (bundles of ``{"CPU": max_colocate_count, "GPU": 1}``)
and blocks in ``ray.get([pg.ready() for pg in pgs])`` with no timeout and no message. It is called when the
trainer builds its worker groups from the pools that ``ResourcePoolManager.create_resource_pool`` declared
(``create_resource_pool`` itself only counts the cluster's free GPUs once). On a Ray cluster whose GPUs are
busy with another job, or whose nodes have fewer CPUs or GPUs per node than a bundle set needs, the run then
waits forever without a word.

While the wrapped call is pending, a WARNING every :data:`WARN_EVERY_S` seconds names the pool's placement
groups that Ray has not placed yet, the bundles each asks for, the total asked, and what the cluster has
available out of its total (``ray.available_resources()`` / ``ray.cluster_resources()``). A call that returns
within the first interval logs nothing; one that returned after warnings logs one INFO line with the time it
waited. Placement groups a pool already holds are returned by verl without waiting, and without a watcher.

Installed for every verl run where the plugin is (a lazy registration in :mod:`onethinker_verl.plugin`):
it changes no result, only adds a watcher thread for the duration of each placement (one per pool).
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from onethinker_verl.glue.method_wrapping import wrap_attribute

logger = logging.getLogger(__name__)

WARN_EVERY_S = 30.0  # first warning after this long, then again at each interval


def _resources(resources: dict) -> str:
    """``{"CPU": 3.0, "GPU": 1.0}`` -> ``CPU 3, GPU 1`` (Ray's memory entries and node markers left out)."""
    shown = []
    for name, amount in sorted(resources.items()):
        if name in ("memory", "object_store_memory") or name.startswith("node:") or amount == 0:
            continue
        shown.append(f"{name} {amount:g}")
    return ", ".join(shown) or "nothing"


def pending_placement_groups(name_prefix: str) -> list[dict]:
    """Ray's table entries of the placement groups named ``name_prefix...`` that are not placed yet."""
    from ray.util import placement_group_table

    return [
        entry for entry in placement_group_table().values()
        if entry.get("state") not in ("CREATED", "REMOVED") and str(entry.get("name", "")).startswith(name_prefix)
    ]


def describe_wait(name_prefix: str, waited_s: float) -> str | None:
    """One line: what the pool ``name_prefix`` asks for and what the cluster has; None once nothing is pending."""
    import ray

    pending = pending_placement_groups(name_prefix)
    if not pending:
        return None
    asked = Counter()
    groups = []
    for entry in pending:
        bundles = list(entry["bundles"].values())
        for bundle in bundles:
            asked.update(bundle)
        kinds = Counter(_resources(bundle) for bundle in bundles)
        shape = "; ".join(f"{count} x {{{kind}}}" for kind, count in kinds.items())
        groups.append(f"{entry['name']} ({entry['strategy']}: {shape})")
    available, total = ray.available_resources(), ray.cluster_resources()
    have = ", ".join(
        f"{name} {available.get(name, 0):g}/{total.get(name, 0):g}" for name in sorted(asked) if asked[name]
    )
    return (
        f"waiting {waited_s:.0f} s for Ray to place {len(pending)} placement group(s) of resource pool "
        f"{name_prefix!r}: {', '.join(groups)}; asked in all: {_resources(dict(asked))}; the cluster has "
        f"available/total: {have} (each placement group must fit on one node with STRICT_PACK). verl waits "
        "until they are free: free them, or lower trainer.nnodes / trainer.n_gpus_per_node"
    )


def _watch(name_prefix: str, done: threading.Event, started: float, every_s: float) -> None:
    while not done.wait(every_s):
        try:
            line = describe_wait(name_prefix, time.monotonic() - started)
        except Exception as error:  # the watcher must never break the placement it reports on
            line = f"waiting {time.monotonic() - started:.0f} s for Ray to place resource pool {name_prefix!r} " \
                   f"(its state could not be read: {error!r})"
        if line:
            logger.warning("%s", line)


def _report_waits(get_placement_groups: Callable) -> Callable:
    def wrapper(self, *args, **kwargs):
        if self.pgs is not None:  # already placed: verl returns them without waiting
            return get_placement_groups(self, *args, **kwargs)
        # verl names the groups ``name`` when given, else ``<pool name_prefix>verl_group_...``
        name = kwargs.get("name", args[1] if len(args) > 1 else None) or self.name_prefix
        done, started = threading.Event(), time.monotonic()
        watcher = threading.Thread(
            target=_watch, args=(name, done, started, WARN_EVERY_S), name=f"resource-wait-{name}", daemon=True,
        )
        watcher.start()
        try:
            return get_placement_groups(self, *args, **kwargs)
        finally:
            done.set()
            waited = time.monotonic() - started
            if waited >= WARN_EVERY_S:
                logger.info("resource pool %r placed after %.0f s", name, waited)

    return wrapper


def install() -> None:
    """Wrap ``RayResourcePool.get_placement_groups`` (once)."""
    from verl.single_controller.ray.base import RayResourcePool

    wrap_attribute(RayResourcePool, "get_placement_groups", _report_waits)
