"""Media pipeline cost: decoders, n = 8 sessions of one video prompt, pre-sampled frames, start-up at 100k rows.

    python benchmarks/media_pipeline.py [--workdir DIR] [--repeats 3]

Generates a 60 s 854x480 30 fps H.264 clip (PyAV, kept in --workdir) and measures, each scenario in a fresh
process (so caches and peak memory are its own):

- decoders: qwen_vl_utils' ``fetch_video`` at the recipe's sampling (2 fps, at most 128 frames, 65,536 pixels
  per frame, Qwen3-VL patch 16) with each reader backend that works here;
- one decode: verl's ``RLHFDataset.process_multi_modal_info`` for one session;
- today's path: the same for n = 8 concurrent sessions of the prompt (verl 0.9.1 without this project);
- shared decode: ``OneThinkerDataset.process_multi_modal_info`` for the 8 sessions (cache on);
- pre-sampled: the same with ``data.presampled_video_root`` (frames presampled beforehand, not counted);
- start-up: building ``OneThinkerDataset`` over 100k rows (each its own video file, prompt_length column),
  and ``count_usable_rows`` on the same files.

Costs are CPU seconds of the measuring process (``time.process_time``: every thread, including the decoders'
and the executor's), not wall time: the machine this ran on has 2 cores shared with other work, so wall time
says little. Each scenario runs twice in its process; the second run (steady state, as every step after the
first in a rollout worker) is reported, the first as ``first_cpu_s``: the first call also pays for faulting
in fresh memory for the 8 sessions' frames (about 2 CPU-ms per MiB on the VM measured). Peak memory is the
process's peak resident set (``ru_maxrss``).
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSIONS = 8
PATCH = 16  # Qwen3-VL
BENCH_DIR = Path(__file__).resolve().parent


def _clip(workdir: Path) -> Path:
    sys.path.insert(0, str(BENCH_DIR))
    from synthetic_video import write_h264

    path = workdir / "clip_60s_854x480_30fps.mp4"
    if not path.is_file():
        write_h264(path.with_suffix(".partial.mp4"), seconds=60, width=854, height=480, fps=30)
        path.with_suffix(".partial.mp4").rename(path)
    return path


def _messages(video: Path):
    from onethinker_verl.data.media import ROW_LABEL_KEY, MediaSettings

    item = {"type": "video", **MediaSettings().video_item(str(video)), ROW_LABEL_KEY: "id='bench'"}
    return [{"role": "user", "content": [item, {"type": "text", "text": "What happens in the video?"}]}]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- scenarios (each runs in its own process) ------------------------------------------------------------


def _sessions(call, messages, config, n: int) -> float:
    """CPU seconds of ``n`` concurrent calls (measured inside the event loop: asyncio's teardown, which
    formats leftover results, is not part of the work)."""

    async def run():
        started = time.process_time()
        results = await asyncio.gather(*[call(messages, image_patch_size=PATCH, config=config) for _ in range(n)])
        cost = time.process_time() - started
        assert len(results) == n
        del results
        return cost

    return asyncio.run(run())


def run_scenario(name: str, video: Path, workdir: Path, extra: str | None) -> dict:
    from omegaconf import OmegaConf

    if name == "decoder":
        from qwen_vl_utils import vision_process

        from onethinker_verl.data.media import MediaSettings

        vision_process.FORCE_QWENVL_VIDEO_READER = extra
        vision_process.get_video_reader_backend.cache_clear()
        item = MediaSettings().video_item(str(video))
        started = time.process_time()
        (resized, metadata), _ = vision_process.fetch_video(
            item, image_patch_size=PATCH, return_video_sample_fps=True, return_video_metadata=True
        )
        total = time.process_time() - started
        if metadata.get("video_backend") != extra:  # qwen_vl_utils fell back to another reader
            raise RuntimeError(f"{extra} failed; qwen_vl_utils fell back to {metadata.get('video_backend')}")
        return {"cpu_s": total, "frames": list(resized.shape), "backend": metadata["video_backend"]}

    from qwen_vl_utils import vision_process

    vision_process.FORCE_QWENVL_VIDEO_READER = "decord"  # the recipe's data.video_reader_backend
    vision_process.get_video_reader_backend.cache_clear()
    messages = _messages(video)
    _warm_up(workdir)
    if name in ("one_decode", "today"):
        from verl.utils.dataset.rl_dataset import RLHFDataset

        n = 1 if name == "one_decode" else SESSIONS
        first, cost = [_sessions(RLHFDataset.process_multi_modal_info, messages, OmegaConf.create({}), n) for _ in "12"]
        return {"cpu_s": cost, "first_cpu_s": first, "sessions": n, "peak_rss_mib": _peak_rss_mib()}

    from onethinker_verl.data import media_cache
    from onethinker_verl.data.dataset import OneThinkerDataset

    if name == "shared":
        config = OmegaConf.create({})
        first = _sessions(OneThinkerDataset.process_multi_modal_info, messages, config, SESSIONS)
        media_cache.clear()
        cost = _sessions(OneThinkerDataset.process_multi_modal_info, messages, config, SESSIONS)
        warm = _sessions(OneThinkerDataset.process_multi_modal_info, messages, config, SESSIONS)
        stats = media_cache.stats()
        return {"cpu_s": cost, "first_cpu_s": first, "warm_cpu_s": warm, "sessions": SESSIONS, "peak_rss_mib": _peak_rss_mib(),
                "cache_bytes_held": stats.bytes_held, "cache_max_bytes": stats.max_bytes,
                "misses": stats.misses, "shared": stats.shared, "hits": stats.hits}
    if name == "presampled":
        from onethinker_verl.data.presampled import presampled_stats

        root = workdir / "presampled"
        subprocess.run(
            [sys.executable, str(BENCH_DIR.parent / "data_prep" / "presample_videos.py"), "--input",
             str(_one_video_parquet(video, workdir)), "--output", str(root), "--image-patch-size", str(PATCH),
             "--workers", "1"], check=True, capture_output=True,
        )
        config = OmegaConf.create({"presampled_video_root": str(root), "media_cache_bytes": 0})
        first, cost = [_sessions(OneThinkerDataset.process_multi_modal_info, messages, config, SESSIONS) for _ in "12"]
        stored = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        return {"cpu_s": cost, "first_cpu_s": first, "sessions": SESSIONS, "reads": presampled_stats()["read"],
                "stored_bytes": stored,
                "peak_rss_mib": _peak_rss_mib()}
    if name == "startup":
        return _startup(workdir, int(extra))
    raise ValueError(name)


def _warm_up(workdir: Path) -> None:
    """Import and initialise everything (qwen_vl_utils, decoders, executor threads) on a tiny clip."""
    from qwen_vl_utils import process_vision_info


    sys.path.insert(0, str(BENCH_DIR))
    from synthetic_video import write_h264

    tiny = workdir / "warm_up.mp4"
    if not tiny.is_file():
        write_h264(tiny, seconds=1, width=64, height=64, fps=10)
    process_vision_info(_messages(tiny), image_patch_size=PATCH, return_video_metadata=True)

    async def in_executor():
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0)

    asyncio.run(in_executor())


def _one_video_parquet(video: Path, workdir: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = workdir / "one_video.parquet"
    pq.write_table(pa.table({"videos": [[str(video)]]}), path)
    return path


def _startup(workdir: Path, rows: int) -> dict:
    """Dataset construction over ``rows`` rows, each pointing at its own (empty) video file: start-up only
    stats files, so their content does not matter."""
    import pyarrow.parquet as pq
    from omegaconf import OmegaConf

    from onethinker_verl.data.corpus import CorpusRow, verl_rl_record
    from onethinker_verl.data.dataset import OneThinkerDataset
    from onethinker_verl.data.parquet import RL_SCHEMA, BatchedParquetWriter
    from onethinker_verl.data.prompts import load_templates

    media = workdir / f"startup_media_{rows}"
    media.mkdir(exist_ok=True)
    parquet = workdir / f"startup_{rows}.parquet"
    if not parquet.is_file():
        templates = load_templates(None)
        import pyarrow as pa

        schema = RL_SCHEMA.append(pa.field("prompt_length", pa.int64()))
        with BatchedParquetWriter(parquet, schema) as writer:
            for index in range(rows):
                name = f"v{index:07d}.mp4"
                (media / name).touch()
                row = CorpusRow(f"r{index}", f"What happens in clip {index}?", "multiple choice", "video", "A",
                                ["A. yes", "B. no"], [], [name], "bench")
                record = verl_rl_record(row, index, templates)
                record["prompt_length"] = 1000 + index % 20000
                writer.write(record)
    config = OmegaConf.create({
        "media_root": str(media), "max_prompt_length": 16384, "filter_overlong_prompts": False,
        "cache_dir": str(workdir / "verl_cache"),
    })
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(dir=workdir)  # cold: datasets converts the parquet
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    dataset = OneThinkerDataset([str(parquet)], None, config, processor=object())
    build_cpu, build_wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
    started_cpu = time.process_time()
    counted = OneThinkerDataset.count_usable_rows([str(parquet)], config)
    count_cpu = time.process_time() - started_cpu
    assert counted == len(dataset) == rows - dataset.dropped_overlong
    return {"rows": rows, "kept": len(dataset), "build_cpu_s": build_cpu, "build_wall_s": build_wall,
            "count_usable_rows_cpu_s": count_cpu, "parquet_rows": pq.ParquetFile(parquet).metadata.num_rows}


# ---- orchestration --------------------------------------------------------------------------------------


def _in_subprocess(name: str, video: Path, workdir: Path, extra: str | None = None, env=None) -> dict:
    command = [sys.executable, __file__, "--scenario", name, "--video", str(video), "--workdir", str(workdir)]
    if extra is not None:
        command += ["--extra", extra]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    ok = [run for run in runs if "error" not in run]
    if not ok:
        return runs[0]
    best = dict(min(ok, key=lambda run: run["cpu_s"]))
    best["median_cpu_s"] = statistics.median(run["cpu_s"] for run in ok)
    best["runs"] = len(ok)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=None, help="where the clip and scratch files go (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario; the cheapest is reported")
    parser.add_argument("--startup-rows", type=int, default=100_000)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--extra", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="media_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, Path(args.video), workdir, args.extra)))
        return 0

    video = _clip(workdir)
    results = {"decoders": {}}
    for backend in ("decord", "torchvision", "torchcodec"):
        results["decoders"][backend] = _best([_in_subprocess("decoder", video, workdir, backend) for _ in range(args.repeats)])
    for name in ("one_decode", "today", "shared", "presampled"):
        results[name] = _best([_in_subprocess(name, video, workdir) for _ in range(args.repeats)])
    results["startup"] = _in_subprocess("startup", video, workdir, str(args.startup_rows))

    one = results["one_decode"]["cpu_s"]
    print(json.dumps(results, indent=1))
    print(f"\nCPU-seconds per prompt per step (n={SESSIONS}, 60 s 854x480 30 fps H.264; best of {args.repeats}):")
    for backend, run in results["decoders"].items():
        shown = f"{run['cpu_s']:.2f} s (median {run['median_cpu_s']:.2f})" if "error" not in run else run["error"]
        print(f"  decoder {backend:<12} one fetch_video: {shown}")
    print(f"  one decode (verl, 1 session):        {one:.2f}")
    for name in ("today", "shared", "presampled"):
        run = results[name]
        print(f"  {name:<12} ({SESSIONS} sessions):          {run['cpu_s']:.2f}  = {run['cpu_s'] / one:.2f}x one decode"
              f"  (median {run['median_cpu_s']:.2f}; first call {run['first_cpu_s']:.2f}; "
              f"peak RSS {run['peak_rss_mib']:.0f} MiB)")
    shared = results["shared"]
    print(f"  shared, warm cache ({SESSIONS} sessions): {shared['warm_cpu_s']:.2f}; cache holds "
          f"{shared['cache_bytes_held'] / 2**20:.1f} MiB for this video (bound {shared['cache_max_bytes'] / 2**30:.0f} GiB)")
    presampled = results["presampled"]
    print(f"  pre-sampled is {one / presampled['cpu_s']:.0f}x cheaper than one decode; stored "
          f"{presampled['stored_bytes'] / 2**20:.1f} MiB for 60 s -> {presampled['stored_bytes'] * 60 / 2**30:.2f} GiB per hour "
          "of such clips")
    startup = results["startup"]
    if "error" in startup:
        print(f"  start-up: {startup['error']}")
    else:
        print(f"  start-up, {startup['rows']} rows: {startup['build_cpu_s']:.1f} CPU-s ({startup['build_wall_s']:.1f} s wall), "
              f"count_usable_rows {startup['count_usable_rows_cpu_s']:.1f} CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
