"""Shared decoding in the rollout worker: n concurrent sessions of a prompt, through verl's own agent-loop
method, decode each image/video once and get exactly what qwen_vl_utils returns; the cache is bounded,
never serves a changed file, and a broken video fails the sessions with a message naming file and row."""

import asyncio
import os
import shutil
import time
import types

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from qwen_vl_utils import process_vision_info
from synthetic_video import write_h264
from verl.experimental.agent_loop.agent_loop import AgentLoopBase

from onethinker_verl.data import media_cache
from onethinker_verl.data.dataset import OneThinkerDataset
from onethinker_verl.data.media import ROW_LABEL_KEY, MediaSettings

PATCH = 16  # Qwen3-VL


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    write_h264(folder / "clip.mp4", seconds=3, width=160, height=96, fps=10)
    write_h264(folder / "other.mp4", seconds=2, width=160, height=96, fps=10, seed=1)
    Image.new("RGB", (120, 90), (20, 200, 30)).save(folder / "still.png")
    return folder


@pytest.fixture(autouse=True)
def fresh_cache():
    media_cache.clear()
    yield
    media_cache.clear()


def _messages(video: str, image: str | None = None, fps: float = 2.0, row: str = "id='r1'"):
    content = [{"type": "text", "text": "What happens?"}]
    if image is not None:
        item = MediaSettings().image_item(image)
        content.append({"type": "image", **item, ROW_LABEL_KEY: row})
    content.append({"type": "video", **MediaSettings(video_fps=fps).video_item(video), ROW_LABEL_KEY: row})
    return [{"role": "user", "content": content}]


def _config(**data):
    return OmegaConf.create(data)


def _agent_loop(config):
    """verl's AgentLoopBase.process_multi_modal_info with OneThinkerDataset as the dataset class (the real
    method; only the attributes it reads are provided)."""
    processor = types.SimpleNamespace(image_processor=types.SimpleNamespace(patch_size=PATCH))
    return types.SimpleNamespace(processor=processor, dataset_cls=OneThinkerDataset, data_config=config)


def _same(a, b) -> None:
    (images_a, videos_a), (images_b, videos_b) = a, b
    assert (images_a is None) == (images_b is None) and (videos_a is None) == (videos_b is None)
    for x, y in zip(images_a or [], images_b or [], strict=True):
        assert x.size == y.size and x.mode == y.mode and x.tobytes() == y.tobytes()
    for (frames_x, meta_x), (frames_y, meta_y) in zip(videos_a or [], videos_b or [], strict=True):
        assert frames_x.dtype == frames_y.dtype and torch.equal(frames_x, frames_y)
        assert meta_x == meta_y


def test_eight_sessions_share_one_decode_through_verls_agent_loop(media):
    messages = _messages(str(media / "clip.mp4"), str(media / "still.png"))
    expected = process_vision_info(messages, image_patch_size=PATCH, return_video_metadata=True)
    loop = _agent_loop(_config())

    async def sessions():
        return await asyncio.gather(*[AgentLoopBase.process_multi_modal_info(loop, messages) for _ in range(8)])

    started = time.process_time()
    results = asyncio.run(sessions())
    shared_cpu = time.process_time() - started
    for result in results:
        _same((result["images"], result["videos"]), expected)
    stats = media_cache.stats()
    assert stats.misses == 2 and stats.hits + stats.shared == 14 and stats.entries == 2
    # each session owns its result: changing one changes neither the others nor a later hit
    results[0]["videos"][0][0].zero_()
    results[0]["videos"][0][1]["frames_indices"].append(-1)
    results[0]["images"][0].paste((0, 0, 0), (0, 0, 10, 10))
    for result in results[1:]:
        _same((result["images"], result["videos"]), expected)
    again = asyncio.run(OneThinkerDataset.process_vision_info(messages, image_patch_size=PATCH, config=_config()))
    _same(again, expected)

    started = time.process_time()
    process_vision_info(messages, image_patch_size=PATCH, return_video_metadata=True)
    one_decode_cpu = time.process_time() - started
    # process time of this process (decoder threads included); generous margin for a busy 2-core machine
    assert shared_cpu < 3.0 * one_decode_cpu + 0.5


def test_settings_are_part_of_the_key_and_the_cache_is_bounded(media):
    clip, other = str(media / "clip.mp4"), str(media / "other.mp4")
    config = _config()
    held = []
    for fps in (1.0, 2.0):
        result = media_cache.process_vision_info_shared_sync(_messages(clip, fps=fps), PATCH, config)
        _same(result, process_vision_info(_messages(clip, fps=fps), image_patch_size=PATCH, return_video_metadata=True))
        held.append(result[1][0][0])
    assert media_cache.stats().misses == 2
    held.append(media_cache.process_vision_info_shared_sync(_messages(clip), PATCH + 2, config)[1][0][0])  # patch
    stats = media_cache.stats()
    assert stats.misses == 3 and stats.hits == 0
    assert stats.bytes_held == sum(frames.numel() for frames in held)  # held as uint8: one byte per value

    # a bound of about one video: adding another evicts the least recently used entry
    media_cache.clear()
    one = media_cache.process_vision_info_shared_sync(_messages(clip), PATCH, _config(media_cache_bytes=10**9))
    size = one[1][0][0].numel()
    bounded = _config(media_cache_bytes=size + size // 2)
    media_cache.process_vision_info_shared_sync(_messages(clip), PATCH, bounded)
    media_cache.process_vision_info_shared_sync(_messages(other), PATCH, bounded)
    stats = media_cache.stats()
    assert stats.evicted >= 1 and stats.bytes_held <= size + size // 2 and stats.entries == 1

    # 0 keeps nothing, but concurrent callers still share one decode
    media_cache.clear()
    off = _config(media_cache_bytes=0)

    async def sessions():
        calls = [OneThinkerDataset.process_vision_info(_messages(clip), image_patch_size=PATCH, config=off) for _ in range(4)]
        return await asyncio.gather(*calls)

    results = asyncio.run(sessions())
    stats = media_cache.stats()
    assert stats.misses == 1 and stats.shared == 3 and stats.entries == 0 and stats.bytes_held == 0
    expected = process_vision_info(_messages(clip), image_patch_size=PATCH, return_video_metadata=True)
    for result in results:
        _same(result, expected)


def test_a_changed_file_is_decoded_again(media, tmp_path):
    path = tmp_path / "changing.mp4"
    shutil.copy(media / "clip.mp4", path)
    config = _config()
    first = media_cache.process_vision_info_shared_sync(_messages(str(path)), PATCH, config)
    shutil.copy(media / "other.mp4", path)  # new content at the same path
    second = media_cache.process_vision_info_shared_sync(_messages(str(path)), PATCH, config)
    _same(second, process_vision_info(_messages(str(path)), image_patch_size=PATCH, return_video_metadata=True))
    assert not torch.equal(first[1][0][0][:1], second[1][0][0][:1]) or first[1][0][0].shape != second[1][0][0].shape
    # same size and content, only the modification time moves: still a new key
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    media_cache.process_vision_info_shared_sync(_messages(str(path)), PATCH, config)
    assert media_cache.stats().misses == 3 and media_cache.stats().hits == 0


def test_broken_video_fails_the_sessions_naming_file_and_row(media, tmp_path):
    truncated = tmp_path / "truncated.mp4"
    data = (media / "clip.mp4").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    loop = _agent_loop(_config())
    for broken in (garbage, truncated):
        messages = _messages(str(broken), row="id='row-77', input position 77")

        async def sessions():
            calls = [AgentLoopBase.process_multi_modal_info(loop, messages) for _ in range(3)]
            return await asyncio.gather(*calls, return_exceptions=True)

        outcomes = asyncio.run(sessions())
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if broken is truncated and not failures:
            continue  # the decoder recovered the frames it could read: nothing to fail
        assert len(failures) == 3
        for failure in failures:
            assert isinstance(failure, media_cache.MediaDecodeError)
            assert str(broken) in str(failure) and "row-77" in str(failure) and "input position 77" in str(failure)
    assert media_cache.stats().failures >= 1 and media_cache.stats().entries == 0
    # the worker goes on: a good prompt right after decodes normally
    good = asyncio.run(AgentLoopBase.process_multi_modal_info(loop, _messages(str(media / "clip.mp4"))))
    assert good["videos"][0][0].shape[0] == 6
