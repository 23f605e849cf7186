"""The SAM2 step with the real ``sam2`` package on CPU: a random-weight checkpoint built from the packaged tiny
config, image and video segmentation rows over media written here, ``python -m onethinker_verl.evaluate sam2``
run as a user runs it, then ``score``; the suite's segmentation stage end to end; the set-up errors.

The masks are compared with the reference's own procedure (``seg_post_sam2.py``) run here on the same model:
frames extracted by its ffmpeg command, its prompt order, forward then backward propagation."""

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

import onethinker_verl
from onethinker_verl.evaluate.__main__ import main
from onethinker_verl.evaluate.reference.masks import boundary_f_score
from onethinker_verl.evaluate.sam2_bridge import check_sam2_setup, sam2_hydra, without_extension_warning

TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
PACKAGE = Path(onethinker_verl.__file__).parent
WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 2, 5


def build_tiny_predictor(checkpoint=None):
    with sam2_hydra():
        from sam2.build_sam import build_sam2_video_predictor

        return build_sam2_video_predictor(TINY_CONFIG, ckpt_path=checkpoint, device="cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A SAM2 checkpoint (``{"model": state dict}``) of the tiny config with random weights."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": build_tiny_predictor().state_dict()}, path)
    return path


def rle(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def decode(encoded: dict) -> np.ndarray:
    return coco_mask.decode({"size": encoded["size"], "counts": encoded["counts"].encode()}).astype(bool)


def rectangle(width: int, height: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def scene(width: int, height: int, shift: int = 0) -> np.ndarray:
    image = np.full((height, width, 3), 30, dtype=np.uint8)
    image[12:36, 20 + shift : 44 + shift] = (40, 90, 230)  # a blue rectangle moving right
    return image


def write_media(folder: Path) -> None:
    Image.fromarray(scene(WIDTH, HEIGHT)).save(folder / "picture.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "broken.mp4").write_bytes(b"not a video")
    with av.open(str(folder / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(FRAMES):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(scene(WIDTH, HEIGHT, 2 * index), format="rgb24")))
        container.mux(stream.encode())


BOX = [300, 250, 700, 750]  # 0-1000 units; no coordinate lands on a half pixel at 64x48 or 32x24
POINTS = {"positive_points": [[500, 500]], "negative_points": [[100, 900]]}


def answer(**prompts) -> str:
    return "<answer>" + json.dumps(prompts) + "</answer>"


def image_row(problem_id: str, output: str, width: int = WIDTH, height: int = HEIGHT, path: str = "picture.jpg") -> dict:
    return {"problem_id": problem_id, "problem": "Segment the blue rectangle.", "problem_type": "segmentation",
            "data_type": "image", "path": path, "solution": "<answer>{}</answer>", "output": output,
            "resolution": {"width": width, "height": height},
            "segmentation_output": {"segmentation_rle": rle(rectangle(width, height, width * 20 // 64, height // 4, width * 44 // 64, height * 3 // 4))}}


def video_row(problem_id: str, output: str, path: str = "clip.mp4", fps: float = FPS) -> dict:
    keys = [f"{index:05d}" for index in range(FRAMES)]
    truth = {key: rle(rectangle(WIDTH, HEIGHT, 20 + 2 * index, 12, 44 + 2 * index, 36)) for index, key in enumerate(keys) if index != 1}
    return {"problem_id": problem_id, "problem": "Segment the blue rectangle.", "problem_type": "segmentation",
            "data_type": "video", "path": path, "fps": fps, "solution": "<answer>{}</answer>", "output": output,
            "resolution": {"width": WIDTH, "height": HEIGHT}, "segmentation_output": {"frames": keys, "segmentation_rle": truth}}


def benchmark_rows() -> list[dict]:
    return [
        image_row("img-box", answer(boxes=BOX)),
        image_row("img-points", answer(**POINTS)),
        image_row("img-both-resized", answer(boxes=BOX, **POINTS), width=32, height=24),  # the JPEG is 64x48
        image_row("img-unprompted", answer()),
        image_row("img-broken", answer(boxes=BOX), path="broken.jpg"),
        video_row("vid-mid", answer(time=1.0, boxes=BOX, **POINTS)),  # frame 2 of 5: propagation both ways
        video_row("vid-unprompted", answer(time=1.0)),
        video_row("vid-broken", answer(time=0.0, boxes=BOX), path="broken.mp4"),
        video_row("vid-bad-fps", answer(boxes=BOX), fps=0),
    ]


def to_pixels(value: float, size: int) -> int:
    return int(max(0, min(size, round(value * size / 1000.0))))


def reference_prompts(width: int, height: int, with_box: bool, with_points: bool):
    box = np.array([to_pixels(BOX[0], width), to_pixels(BOX[1], height), to_pixels(BOX[2], width), to_pixels(BOX[3], height)],
                   dtype=np.float32) if with_box else None
    if not with_points:
        return box, None, None
    points = [[to_pixels(x, width), to_pixels(y, height)] for x, y in POINTS["positive_points"] + POINTS["negative_points"]]
    return box, np.array(points, dtype=np.float32), np.array([1, 0], dtype=np.int32)


def reference_masks(predictor, frame_dir: Path, frame_index: int, box, points, labels) -> dict[int, np.ndarray]:
    """seg_post_sam2.py's calls: box, then points + labels + box, on the annotated frame; forward, then backward."""
    state = predictor.init_state(video_path=str(frame_dir))
    logits = None
    if box is not None:
        _, _, logits = predictor.add_new_points_or_box(state, frame_idx=frame_index, obj_id=1, box=box)
    if points is not None:
        _, _, logits = predictor.add_new_points_or_box(state, frame_idx=frame_index, obj_id=1, points=points, labels=labels, box=box)
    if len(list(Path(frame_dir).glob("*.jpg"))) == 1:
        return {0: (logits[0] > 0).numpy().squeeze()}
    masks = {}
    for reverse in (False, True):
        for index, _, out in predictor.propagate_in_video(state, start_frame_idx=frame_index, reverse=reverse):
            masks[int(index)] = (out[0] > 0).numpy().squeeze()
    return masks


def reference_ffmpeg_frames(video: Path, folder: Path) -> None:
    """The reference's extraction: one ffmpeg call per frame k at k / fps seconds, scaled to W x H."""
    import imageio_ffmpeg

    folder.mkdir()
    for index in range(FRAMES):
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-ss", f"{max(0.0, index / FPS)}",
                        "-i", str(video), "-frames:v", "1", "-q:v", "2", "-vf", f"scale={WIDTH}:{HEIGHT}",
                        str(folder / f"{index:06d}.jpg")], check=True)


def agreement(first: np.ndarray, second: np.ndarray) -> float:
    return float((first == second).mean())


def test_sam2_command_with_the_real_package(checkpoint, tmp_path):
    import torch

    media = tmp_path / "media"
    media.mkdir()
    write_media(media)
    outputs = tmp_path / "eval_seg_tiny_eval.json"
    outputs.write_text(json.dumps({"results": benchmark_rows(), "metrics": {}, "meta": {}}))
    finished = subprocess.run(
        [sys.executable, "-m", "onethinker_verl.evaluate", "sam2", "--outputs", str(outputs), "--checkpoint", str(checkpoint),
         "--config", TINY_CONFIG, "--media-root", str(media), "--device", "cpu"],
        capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "row 8 (problem_id 'vid-broken', broken.mp4): left out, no-jpg-in-frame-dir" in finished.stderr
    rows = {row["problem_id"]: row for row in json.loads(outputs.read_text())["results"]}

    # masks at each row's resolution; one per frame of the frame list, keyed by frame index
    for problem_id in ("img-box", "img-points"):
        assert rows[problem_id]["pred_masks"]["size"] == [HEIGHT, WIDTH] and rows[problem_id]["status"] == "ok"
    assert rows["img-both-resized"]["pred_masks"]["size"] == [24, 32]
    video = rows["vid-mid"]["pred_masks"]
    assert sorted(video) == [str(index) for index in range(FRAMES)]
    assert all(encoded["size"] == [HEIGHT, WIDTH] for encoded in video.values())
    assert rows["vid-unprompted"]["pred_masks"] == {}
    assert rows["vid-unprompted"]["reward"] == {"J": 0.0, "F": 0.0, "J&F": 0.0} and rows["vid-unprompted"]["status"] == "ok"
    # left out with the reference's statuses, and counted
    assert rows["img-unprompted"]["status"] == "no-prompts" and rows["img-unprompted"]["reward"] is None
    assert rows["img-broken"]["status"].startswith("image-open-fail: ") and "pred_masks" not in rows["img-broken"]
    assert rows["vid-broken"]["status"] == "no-jpg-in-frame-dir" and "pred_masks" not in rows["vid-broken"]
    assert rows["vid-bad-fps"]["status"] == "bad-fps"
    # frames named by index, as the reference's ffmpeg command writes them (same bytes)
    reference_frames = tmp_path / "reference_frames"
    reference_ffmpeg_frames(media / "clip.mp4", reference_frames)
    assert sorted(path.name for path in (media / "clip").iterdir()) == [f"{index:06d}.jpg" for index in range(FRAMES)]
    for index in range(FRAMES):
        assert (media / "clip" / f"{index:06d}.jpg").read_bytes() == (reference_frames / f"{index:06d}.jpg").read_bytes()

    # the same masks as the reference's procedure on the same model
    predictor = build_tiny_predictor(str(checkpoint))
    with torch.inference_mode(), without_extension_warning():
        expected_video = reference_masks(predictor, reference_frames, 2, *reference_prompts(WIDTH, HEIGHT, True, True))
        still = tmp_path / "still"
        still.mkdir()
        Image.open(media / "picture.jpg").convert("RGB").resize((32, 24), Image.BILINEAR).save(still / "000000.jpg")
        expected_image = reference_masks(predictor, still, 0, *reference_prompts(32, 24, True, True))[0]
    assert sorted(expected_video) == list(range(FRAMES))
    for index in range(FRAMES):
        assert agreement(decode(video[str(index)]), expected_video[index]) > 0.995
    assert agreement(decode(rows["img-both-resized"]["pred_masks"]), expected_image) > 0.995

    # score reads the masks back into the reference's metrics
    report_path = tmp_path / "report.json"
    assert main(["score", "--outputs", str(outputs), "--output", str(report_path)]) == 0
    (report,) = json.loads(report_path.read_text()).values()
    ious, inters, unions = [], 0, 0
    for problem_id in ("img-box", "img-points", "img-both-resized"):
        truth = decode(rows[problem_id]["segmentation_output"]["segmentation_rle"])
        predicted = decode(rows[problem_id]["pred_masks"])
        inter, union = int((truth & predicted).sum()), int((truth | predicted).sum())
        ious.append(inter / union if union else 0.0)
        inters, unions = inters + inter, unions + union
    j_values, f_values = [], []
    row = rows["vid-mid"]
    for index, key in enumerate(row["segmentation_output"]["frames"]):
        if key in row["segmentation_output"]["segmentation_rle"]:
            truth, predicted = decode(row["segmentation_output"]["segmentation_rle"][key]), decode(video[str(index)])
            union = int((truth | predicted).sum())
            j_values.append(int((truth & predicted).sum()) / union if union else 0.0)
            f_values.append(boundary_f_score(predicted, truth))
    mid = (np.mean(j_values) + np.mean(f_values)) / 2
    assert report["metrics"]["image/gIoU"] == pytest.approx(np.mean(ious))
    assert report["metrics"]["image/cIoU"] == pytest.approx(inters / unions if unions else 0.0)
    assert report["metrics"]["video/J&F"] == pytest.approx((mid + 0.0) / 2)
    assert report["meta"]["segmentation"]["left_out"] == {"no-prompts": 1, "image-open-fail": 1, "no-jpg-in-frame-dir": 1, "bad-fps": 1}


def test_suite_segmentation_stage_runs_sam2(checkpoint, tiny_vl_checkpoint, tmp_path, caplog):
    """``evaluate run`` on the bundled sample with an image and a video segmentation file: generation (resumed
    for the segmentation files, whose answers are written here), SAM2 on CPU, scoring, the report."""
    import shutil

    bench = tmp_path / "bench"
    bench.mkdir()
    media = PACKAGE / "data" / "sample"
    for name in ("images", "videos"):
        shutil.copytree(media / name, bench / name)
    rows = json.loads((PACKAGE / "evaluate" / "sample" / "eval_tiny.json").read_text())
    (bench / "eval_charades.json").write_text(json.dumps(rows[:2]))
    image = rows[2]  # the bundled image segmentation row (128x128, a blue rectangle)
    keys = ["a", "b", "c"]
    video = {"problem_id": "tiny-seg-video", "problem": "Segment the blue square.", "problem_type": "segmentation",
             "data_type": "video", "path": "videos/appear_blue.mp4", "fps": 1, "solution": "<answer>{}</answer>",
             "resolution": {"width": 96, "height": 96},
             "segmentation_output": {"frames": keys, "segmentation_rle": {key: rle(rectangle(96, 96, 30, 30, 60, 60)) for key in keys}}}
    (bench / "eval_seg_refcoco.json").write_text(json.dumps([image]))
    (bench / "eval_seg_mevis.json").write_text(json.dumps([video]))
    generation = tmp_path / "out" / "generation"
    generation.mkdir(parents=True)
    for name, row, prompts in (("eval_seg_refcoco", image, {"boxes": [562, 383, 891, 711]}),
                               ("eval_seg_mevis", video, {"time": 1.0, "boxes": [300, 300, 600, 600]})):
        done = {**row, "output": answer(**prompts)}
        (generation / f"{name}_eval.json").write_text(json.dumps({"results": [done], "metrics": {}, "meta": {}}))

    arguments = ["run", "--bench-dir", str(bench), "--model", str(tiny_vl_checkpoint("qwen3_vl")), "--out-dir",
                 str(tmp_path / "out"), "--backend", "hf", "--max-new-tokens", "4", "--video-max-frames", "4",
                 "--sam2-checkpoint", str(checkpoint), "--sam2-config", TINY_CONFIG]  # --device auto: the CPU here
    assert main(arguments) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report) == {"charades", "seg_refcoco", "seg_mevis"}
    assert set(report["seg_refcoco"]["metrics"]) >= {"image/gIoU", "image/cIoU"}
    assert set(report["seg_mevis"]["metrics"]) >= {"video/J", "video/F", "video/J&F"}
    (segmented,) = json.loads((generation / "eval_seg_mevis_eval.json").read_text())["results"]
    assert sorted(segmented["pred_masks"]) == ["0", "1", "2"] and segmented["status"] == "ok"
    assert all(encoded["size"] == [96, 96] for encoded in segmented["pred_masks"].values())
    assert sorted(path.name for path in (bench / "videos" / "appear_blue").iterdir()) == ["000000.jpg", "000001.jpg", "000002.jpg"]
    (masked,) = json.loads((generation / "eval_seg_refcoco_eval.json").read_text())["results"]
    assert masked["pred_masks"]["size"] == [128, 128] and masked["status"] == "ok"


def test_suite_refuses_a_bad_sam2_setup_before_generating(checkpoint, tiny_vl_checkpoint, tmp_path, caplog):
    bench = tmp_path / "bench"
    bench.mkdir()
    rows = json.loads((PACKAGE / "evaluate" / "sample" / "eval_tiny.json").read_text())
    (bench / "eval_seg_refcoco.json").write_text(json.dumps([rows[2]]))
    arguments = ["run", "--bench-dir", str(bench), "--model", str(tiny_vl_checkpoint("qwen3_vl")), "--out-dir", str(tmp_path / "out"),
                 "--backend", "hf", "--sam2-checkpoint", str(checkpoint), "--sam2-config", "configs/sam2.1/sam2.1_hiera_s.yaml",
                 "--device", "cpu"]
    assert main(arguments) == 1
    assert "does not match config configs/sam2.1/sam2.1_hiera_s.yaml" in caplog.text
    assert not (tmp_path / "out" / "generation").exists()


@pytest.mark.parametrize(
    ("config", "checkpoint_name", "device", "message"),
    [
        ("configs/sam2.1/sam2.1_hiera_b+.yaml", None, "cpu", "does not match config configs/sam2.1/sam2.1_hiera_b+.yaml: "),
        ("configs/sam2.1/sam2.1_hiera_tiny.yaml", None, "cpu", "SAM2 config 'configs/sam2.1/sam2.1_hiera_tiny.yaml' does not exist"),
        (TINY_CONFIG, "missing.pt", "cpu", "missing.pt does not exist"),
        (TINY_CONFIG, None, "cuda:7", "SAM2 device 'cuda:7'"),
    ],
)
def test_sam2_command_refuses_a_bad_setup_in_one_line(checkpoint, tmp_path, caplog, config, checkpoint_name, device, message):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    outputs = tmp_path / "eval_seg_x_eval.json"
    outputs.write_text(json.dumps({"results": [image_row("img-box", answer(boxes=BOX))], "metrics": {}, "meta": {}}))
    used = checkpoint if checkpoint_name is None else tmp_path / checkpoint_name
    arguments = ["sam2", "--outputs", str(outputs), "--checkpoint", str(used), "--config", config, "--device", device]
    assert main(arguments) == 1
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0].getMessage() and "\n" not in errors[0].getMessage()
    assert "pred_masks" not in outputs.read_text()  # nothing touched


def test_building_sam2_leaves_hydra_as_it_was(checkpoint, tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    assert not GlobalHydra.instance().is_initialized()
    check_sam2_setup(TINY_CONFIG, str(checkpoint), "cpu")
    assert not GlobalHydra.instance().is_initialized()  # `import sam2` alone would leave it initialised
    (tmp_path / "job.yaml").write_text("steps: 3\n")
    with initialize_config_dir(str(tmp_path), version_base=None):  # what a Hydra application does next
        assert compose(config_name="job").steps == 3
        check_sam2_setup(TINY_CONFIG, str(checkpoint), "cpu")  # inside someone else's Hydra, which stays theirs
        assert compose(config_name="job").steps == 3
    assert not GlobalHydra.instance().is_initialized()
