"""SAM2 on CPU: seconds per video frame and memory per video, as the evaluation's SAM2 step runs it.

    python benchmarks/sam2_cpu.py [--configs t l] [--frames 8] [--size 854x480]

For each model config (``t``, ``s``, ``b+``, ``l`` of ``configs/sam2.1/``), in a fresh process: SAM2's video
predictor built through :mod:`onethinker_verl.evaluate.sam2_bridge` with random weights (a trained checkpoint
runs the same operations), a folder of ``--frames`` JPEG frames of ``--size`` named by index as the bridge
extracts them, the bridge's calls on it (``init_state``; a box prompt on the middle frame; propagation forwards
to the last frame, then backwards to frame 0) in float32. Reported: wall and CPU seconds of loading the frames,
of the prompt, and per propagated frame step (the prompted frame is stepped twice, once each way), and memory:
the frames as SAM2 holds them (every frame a 3x1024x1024 float32 tensor, whatever the video's size), the
resident set growth over ``init_state`` (the frames plus the backbone run on frame 0) and the process's peak
over the video above what the built model took. The machine these
figures came from has 2 cores shared with other work: CPU seconds are the steadier figure.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {"t": "sam2.1_hiera_t", "s": "sam2.1_hiera_s", "b+": "sam2.1_hiera_b+", "l": "sam2.1_hiera_l"}


def resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> dict:
    wall, cpu = clocks()
    return {"wall_s": round(wall - start[0], 2), "cpu_s": round(cpu - start[1], 2)}


def measure(config_key: str, frames: int, width: int, height: int) -> dict:
    """One config's figures, in this process."""
    import numpy as np
    import torch
    from PIL import Image

    from onethinker_verl.evaluate.sam2_bridge import frame_path, sam2_hydra, without_extension_warning

    config = f"configs/sam2.1/{CONFIGS[config_key]}.yaml"
    with sam2_hydra(), without_extension_warning():
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(config, ckpt_path=None, device="cpu")
    model_mib = resident_mib()
    with tempfile.TemporaryDirectory(prefix="sam2_cpu_") as folder, torch.inference_mode(), without_extension_warning():
        for index in range(frames):
            image = np.full((height, width, 3), 40, dtype=np.uint8)
            x = width // 4 + index * width // (4 * frames)
            image[height // 3 : 2 * height // 3, x : x + width // 4] = (40, 90, 230)
            Image.fromarray(image).save(frame_path(Path(folder), index), quality=95)
        start = clocks()
        state = predictor.init_state(video_path=folder)
        load = since(start)
        loaded_mib = resident_mib() - model_mib
        frames_tensor_mib = state["images"].element_size() * state["images"].nelement() / 2**20
        middle = frames // 2
        box = np.array([width // 4, height // 3, width // 2, 2 * height // 3], dtype=np.float32)
        start = clocks()
        predictor.add_new_points_or_box(state, frame_idx=middle, obj_id=1, box=box)
        prompt = since(start)
        start, steps = clocks(), 0
        for reverse in (False, True):
            for _ in predictor.propagate_in_video(state, start_frame_idx=middle, reverse=reverse):
                steps += 1
        propagation = since(start)
        predictor.reset_state(state)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "config": config,
        "parameters_M": round(sum(p.numel() for p in predictor.parameters()) / 1e6, 1),
        "frames": frames, "size": f"{width}x{height}", "torch_threads": torch.get_num_threads(),
        "load_frames": load, "prompt": prompt,
        "propagation": {**propagation, "frame_steps": steps},
        "per_frame_step": {"wall_s": round(propagation["wall_s"] / steps, 2), "cpu_s": round(propagation["cpu_s"] / steps, 2)},
        "model_rss_mib": round(model_mib), "frames_tensor_mib_per_frame": round(frames_tensor_mib / frames, 1),
        "after_init_state_rss_mib": round(loaded_mib), "video_peak_over_model_mib": round(peak_mib - model_mib),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["t", "l"], choices=sorted(CONFIGS))
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="854x480", help="frame WxH")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one config
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.one:
        print(json.dumps(measure(args.one, args.frames, width, height)))
        return
    root = str(Path(__file__).resolve().parents[1])
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    for key in args.configs:
        finished = subprocess.run([sys.executable, __file__, "--one", key, "--frames", str(args.frames), "--size", args.size],
                                  capture_output=True, text=True, env=environment, check=False)
        if finished.returncode != 0:
            sys.exit(f"{key}: {finished.stderr.strip().splitlines()[-1]}")
        print(finished.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
