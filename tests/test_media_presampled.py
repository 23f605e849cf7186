"""Pre-sampled video: frames decoded once offline give the model exactly what on-the-fly decoding gives
(frames, timestamps / fps metadata, token count, processor outputs), resumably; stale or absent entries fall
back to decoding."""

import asyncio
import importlib.util
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from omegaconf import OmegaConf
from qwen_vl_utils import process_vision_info
from synthetic_video import write_h264
from onethinker_verl.tiny_model import tiny_vl_processor, tiny_vl_tokenizer
from verl.utils.tokenizer import build_multimodal_processor_inputs

from onethinker_verl.data import media_cache
from onethinker_verl.data.dataset import OneThinkerDataset
from onethinker_verl.data.media import ROW_LABEL_KEY, MediaSettings
from onethinker_verl.data.presampled import presampled_stats

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("presample_videos", REPO / "data_prep" / "presample_videos.py")
presample = importlib.util.module_from_spec(spec)
spec.loader.exec_module(presample)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "clips").mkdir()
    # different lengths, frame rates and sizes: frame counts, fps metadata and resizing all differ
    write_h264(root / "clips" / "a.mp4", seconds=3, width=160, height=96, fps=10)
    write_h264(root / "clips" / "b.mp4", seconds=2.5, width=128, height=128, fps=24, seed=2)
    (root / "clips" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    table = pa.table({"videos": [["clips/a.mp4"], ["clips/b.mp4", "clips/a.mp4"], ["clips/broken.mp4"], []]})
    pq.write_table(table, root / "train.parquet")
    return root


def _messages(video: str, settings: MediaSettings):
    item = {"type": "video", **settings.video_item(video), ROW_LABEL_KEY: "id='x'"}
    return [{"role": "user", "content": [item, {"type": "text", "text": "What happens?"}]}]


def test_presampled_frames_give_the_same_processor_outputs(corpus, tmp_path, capsys):
    processor = tiny_vl_processor("qwen3_vl", tiny_vl_tokenizer())
    patch = processor.image_processor.patch_size
    settings = MediaSettings(video_fps=2.0, video_max_pixels=16384)
    output = tmp_path / "presampled"
    argv = ["--input", str(corpus / "train.parquet"), "--media-root", str(corpus), "--output", str(output),
            "--image-patch-size", str(patch), "--workers", "1", "--video-fps", "2.0", "--video-max-pixels", "16384"]
    assert presample.main(argv) == 1  # the broken video is reported, the others are written
    (failed,) = [json.loads(line) for line in (output / "failed.jsonl").read_text().splitlines()]
    assert failed["video"].endswith("broken.mp4") and "Error" in failed["error"]
    assert "written: 2" in capsys.readouterr().out
    presample.main(argv)  # resumable: nothing left to decode but the broken video
    assert "already done: 2  written: 0" in capsys.readouterr().out

    config = OmegaConf.create({"media_root": str(corpus), "presampled_video_root": str(output), "media_cache_bytes": 0})
    for name in ("a.mp4", "b.mp4"):
        messages = _messages(str(corpus / "clips" / name), settings)
        fresh = process_vision_info(messages, image_patch_size=patch, return_video_metadata=True)
        reads = presampled_stats()["read"]
        stored = asyncio.run(OneThinkerDataset.process_vision_info(messages, image_patch_size=patch, config=config))
        assert presampled_stats()["read"] == reads + 1
        (fresh_frames, fresh_meta), (stored_frames, stored_meta) = fresh[1][0], stored[1][0]
        assert stored_frames.dtype == fresh_frames.dtype and torch.equal(stored_frames, fresh_frames)
        assert stored_meta == fresh_meta  # fps, frame indices (-> timestamps), total frames, backend

        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        outputs = [build_multimodal_processor_inputs(processor, text=[text], images=None, videos=videos)
                   for videos in (fresh[1], stored[1])]
        assert outputs[0].keys() == outputs[1].keys()
        for key in outputs[0]:
            assert torch.equal(outputs[0][key], outputs[1][key]), key  # exact: same ids, pixels, grid
        assert int((outputs[0]["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")).sum()) > 0


def test_stale_absent_and_other_settings_fall_back_to_decoding(corpus, tmp_path):
    patch = 16
    output = tmp_path / "presampled"
    presample.main(["--input", str(corpus / "train.parquet"), "--media-root", str(corpus), "--output", str(output),
                    "--image-patch-size", str(patch), "--workers", "1"])
    config = OmegaConf.create({"media_root": str(corpus), "presampled_video_root": str(output), "media_cache_bytes": 0})
    video = corpus / "clips" / "a.mp4"

    def fetch(settings):
        before = presampled_stats()
        asyncio.run(OneThinkerDataset.process_vision_info(_messages(str(video), settings), image_patch_size=patch,
                                                          config=config))
        after = presampled_stats()
        return {key: after[key] - before[key] for key in after}

    assert fetch(MediaSettings()) == {"read": 1, "absent": 0, "stale": 0}
    assert fetch(MediaSettings(video_fps=1.0)) == {"read": 0, "absent": 1, "stale": 0}  # not presampled at 1 fps
    stat = os.stat(video)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the source changed since
    try:
        assert fetch(MediaSettings()) == {"read": 0, "absent": 0, "stale": 1}
    finally:
        os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    media_cache.clear()


def test_ray_tasks_write_the_same_entries(corpus, tmp_path, ray_transfer_queue, capsys):
    """--ray: the videos are presampled by Ray tasks (here on the test session's local cluster)."""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    common = ["--input", str(corpus / "train.parquet"), "--media-root", str(corpus), "--videos-per-task", "1"]
    presample.main([*common, "--output", str(local), "--workers", "1"])
    presample.main([*common, "--output", str(on_ray), "--ray", "auto"])
    assert "written: 2" in capsys.readouterr().out.splitlines()[-1]
    files = sorted(path.relative_to(local) for path in local.rglob("*.frames.npy"))
    assert len(files) == 2 and files == sorted(path.relative_to(on_ray) for path in on_ray.rglob("*.frames.npy"))
    for name in files:
        assert (local / name).read_bytes() == (on_ray / name).read_bytes()
