"""Decode every video of a corpus once, at the recipe's sampling settings, and store the sampled frames for
``data.presampled_video_root`` (see ``onethinker_verl/data/presampled.py`` for the format).

The frames depend on the sampling settings (``--video-*``, defaults = the recipe's), the policy's image
patch size (Qwen3-VL 16, Qwen2.5-VL 14) and the video reader (``--video-reader-backend``, default decord as
in the recipe): pass the values training uses, or the rollout workers will not find
the frames and decode on the fly (logged and counted). Resumable: videos whose entry exists and whose
source is unchanged are skipped, so an interrupted run continues where it stopped. Videos that fail to
decode are listed in input order in OUTPUT/failed.jsonl with the reason of the chosen reader (what it raised
and what it wrote to stderr; the console stays clean), then qwen_vl_utils' fallback reader's failure.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
from pathlib import Path

from tqdm import tqdm

from onethinker_verl.data.cli import add_media_settings_options, converter_parser, media_settings_from_args
from onethinker_verl.data.corpus import RowRejected, parse_row
from onethinker_verl.data.media import apply_video_reader_backend, resolve_media_path
from onethinker_verl.data.records import iter_records

EXAMPLES = [
    "python data_prep/presample_videos.py --input data/onethinker_rl/train.parquet --media-root /data/onethinker "
    "--output /data/onethinker_presampled --image-patch-size 16 --workers 64",
    "# on the training cluster, as Ray tasks of one CPU each:",
    "python data_prep/presample_videos.py --input data/onethinker_rl/train.parquet --media-root /data/onethinker "
    "--output /data/onethinker_presampled --image-patch-size 16 --ray auto",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = converter_parser(__doc__, EXAMPLES)
    parser.add_argument("--input", required=True, nargs="+", help="prepared parquet and/or raw JSON / JSONL files")
    parser.add_argument("--media-root", default=None, help="folder the rows' media paths are relative to")
    parser.add_argument("--output", required=True, help="the folder training gets as data.presampled_video_root")
    parser.add_argument(
        "--image-patch-size", type=int, default=16, help="the policy's patch size: Qwen3-VL 16, Qwen2.5-VL 14"
    )
    parser.add_argument(
        "--video-reader-backend",
        default="decord",
        help="the recipe's data.video_reader_backend: frames are stored per reader (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: %(default)s)")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="run as Ray tasks (one CPU each) on the cluster at ADDRESS (default 'auto': the running cluster)",
    )
    parser.add_argument("--videos-per-task", type=int, default=8, help="videos per worker task")
    add_media_settings_options(parser)
    args = parser.parse_args(argv)
    for path in args.input:
        if not Path(path).is_file():
            parser.error(f"--input file not found: {path}")
    if args.workers <= 0 or args.videos_per_task <= 0:
        parser.error("--workers and --videos-per-task must be positive")
    return args


def corpus_videos(inputs: list[str], media_root: str | None) -> list[str]:
    """Distinct resolved video paths of the input files, in first-seen order."""
    seen: dict[str, None] = {}
    for path in inputs:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            if "videos" not in pq.read_schema(path).names:
                continue
            for videos in pq.read_table(path, columns=["videos"]).column("videos").to_pylist():
                for video in videos or []:
                    seen.setdefault(resolve_media_path(video, media_root), None)
            continue
        for record in iter_records(path):
            try:
                row = parse_row(record.value)
            except RowRejected:
                continue  # invalid rows are prepare_rl.py's to report; they never reach training
            for video in row.videos:
                seen.setdefault(resolve_media_path(video, media_root), None)
    return list(seen)


def _tasks(items: list[dict], size: int) -> list[list[dict]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _run_pool(args, tasks):
    from onethinker_verl.data.presampled import presample_videos

    context = multiprocessing.get_context("spawn")  # the parent may hold torch threads
    with concurrent.futures.ProcessPoolExecutor(args.workers, context) as pool:
        common = (args.media_root, args.image_patch_size, args.video_reader_backend)
        futures = [pool.submit(presample_videos, args.output, task, *common) for task in tasks]
        for future in futures:  # in submission order, so failed.jsonl follows the input
            yield future.result()


def _run_ray(args, tasks):
    import ray

    from onethinker_verl.data.presampled import presample_videos

    ray.init(address=args.ray, ignore_reinit_error=True)
    remote = ray.remote(num_cpus=1)(presample_videos)
    pending = [
        remote.remote(args.output, task, args.media_root, args.image_patch_size, args.video_reader_backend)
        for task in tasks
    ]
    for task in pending:  # in submission order, so failed.jsonl follows the input
        yield ray.get(task)


def run(args) -> dict:
    # torch, through the pre-sampled format: imported here, not for --help
    from onethinker_verl.data.presampled import is_current, presample_videos

    apply_video_reader_backend({"video_reader_backend": args.video_reader_backend})  # entries are per reader
    settings = media_settings_from_args(args)
    videos = corpus_videos(args.input, args.media_root)
    items = [settings.video_item(video) for video in videos]
    todo = [item for item in items if not is_current(args.output, item["video"], args.media_root, item, args.image_patch_size)]
    summary = {"videos": len(items), "already_done": len(items) - len(todo), "written": 0, "failed": 0, "bytes": 0, "seconds": 0.0}
    Path(args.output).mkdir(parents=True, exist_ok=True)
    tasks = _tasks(todo, args.videos_per_task)
    if args.ray is not None:
        batches = _run_ray(args, tasks)
    elif args.workers == 1:
        batches = (
            presample_videos(args.output, task, args.media_root, args.image_patch_size, args.video_reader_backend)
            for task in tasks
        )
    else:
        batches = _run_pool(args, tasks)
    with open(Path(args.output) / "failed.jsonl", "w", encoding="utf-8") as failed, tqdm(
        total=len(todo), desc="presampling videos", unit=" videos", mininterval=1.0
    ) as progress:
        for batch in batches:
            for result in batch:
                if "error" in result:
                    summary["failed"] += 1
                    failed.write(json.dumps(result) + "\n")
                else:
                    summary["written"] += 1
                    summary["bytes"] += result["bytes"]
                    summary["seconds"] += result["seconds"]
            progress.update(len(batch))
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = run(args)
    hours = summary["seconds"] / 3600
    per_hour = f", {summary['bytes'] / 2**30 / hours:.2f} GiB per hour of video" if hours else ""
    print(
        f"videos: {summary['videos']}  already done: {summary['already_done']}  written: {summary['written']}  "
        f"failed: {summary['failed']} (see {Path(args.output) / 'failed.jsonl'})  "
        f"stored: {summary['bytes'] / 2**20:.1f} MiB{per_hour}"
    )
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
