"""What the onethinker plugin adds to ``import verl``.

    python benchmarks/import_time.py [--runs 7] [--clock cpu|wall]

``import verl`` loads every installed ``verl.plugins`` entry point, in every process that imports verl (the
driver, the TaskRunner, every Ray worker). This starts fresh Python processes that run ``import verl``,
alternately with verl's default (``VERL_USE_EXTERNAL_PLUGINS`` unset: the onethinker plugin loads) and with
``VERL_USE_EXTERNAL_PLUGINS=none``, and reports the median time of each and their difference. Each child
measures its own import (``time.perf_counter`` for wall time; ``time.process_time``, the CPU time of the
process, by default: on a machine shared with other jobs, wall time mostly measures waiting for a core).
It also reports how many verl modules each import loaded, and, measured inside the plugin-less processes
right after their ``import verl``, the time of what verl's plugin loop does (discover the entry points and
load them): the plugin's own cost, free of the noise between processes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
clock = time.process_time if sys.argv[1] == "cpu" else time.perf_counter
start = clock()
import verl
elapsed = clock() - start
result = {"seconds": elapsed, "verl_modules": sum(m.split(".")[0] == "verl" for m in sys.modules)}
if sys.argv[2] == "none":
    # What verl's plugin loop would have done here: discover the entry points and load them.
    from importlib.metadata import entry_points
    start = clock()
    for entry_point in entry_points(group="verl.plugins"):
        entry_point.load()
    result["plugin_load_seconds"] = clock() - start
print("IMPORT-TIME " + json.dumps(result))
"""


def time_import(plugins: str, clock: str) -> dict:
    """One fresh ``import verl``; ``plugins`` is the VERL_USE_EXTERNAL_PLUGINS value (``auto``: unset)."""
    env = dict(os.environ)
    env.pop("VERL_USE_EXTERNAL_PLUGINS", None)
    if plugins != "auto":
        env["VERL_USE_EXTERNAL_PLUGINS"] = plugins
    done = subprocess.run(
        [sys.executable, "-c", CHILD, clock, plugins], env=env, capture_output=True, text=True, check=True, timeout=300
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("IMPORT-TIME "))
    return json.loads(line[len("IMPORT-TIME ") :])


def measure(runs: int, clock: str) -> dict:
    """Median seconds and verl module counts of ``import verl`` with the plugin (``auto``) and without."""
    samples = {"auto": [], "none": []}
    for _ in range(runs):  # interleaved, so load changes on the machine hit both alike
        for plugins in samples:
            samples[plugins].append(time_import(plugins, clock))
    summary = {}
    for plugins, results in samples.items():
        summary[plugins] = {
            "median_s": statistics.median(r["seconds"] for r in results),
            "verl_modules": results[-1]["verl_modules"],
        }
    summary["plugin_cost_s"] = summary["auto"]["median_s"] - summary["none"]["median_s"]
    summary["plugin_load_s"] = statistics.median(r["plugin_load_seconds"] for r in samples["none"])
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per setting")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args(argv)
    summary = measure(args.runs, args.clock)
    print(f"import verl, median of {args.runs} fresh processes ({args.clock} time):")
    for label, plugins in (("with the onethinker plugin:    ", "auto"), ("VERL_USE_EXTERNAL_PLUGINS=none:", "none")):
        result = summary[plugins]
        print(f"  {label} {result['median_s']:.2f} s ({result['verl_modules']} verl modules)")
    print(f"  difference:                     {summary['plugin_cost_s']:+.2f} s")
    print(f"  loading the entry point alone:  {summary['plugin_load_s']:.3f} s (after import verl with plugins off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
