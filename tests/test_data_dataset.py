"""OneThinkerDataset through verl's own code: Hydra-composed config, create_rl_dataset, collate_fn,
DataLoader, a real Qwen-VL processor class, qwen_vl_utils/decord decoding, and verl's SFT dataset."""

import asyncio
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
import verl.trainer
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader
from verl.trainer.ppo.utils import create_rl_dataset
from verl.utils.dataset.rl_dataset import collate_fn
from verl.utils.tokenizer import build_multimodal_processor_inputs

from onethinker_verl.data.dataset import OneThinkerDataset
from onethinker_verl.data.media import MediaSettings
from conftest import tiny_qwen_vl_processor
from onethinker_verl.data.sample import sample_dir, sample_file

REPO = Path(__file__).resolve().parents[1]
VERL_CONFIG_DIR = str(Path(verl.trainer.__file__).parent / "config")
SAMPLE_ROWS = [json.loads(line) for line in Path(sample_file("rl_train.jsonl")).read_text().splitlines()]


def data_config(tmp_path, *overrides):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        config = compose(
            "ppo_trainer",
            overrides=[
                "data.custom_cls.path=pkg://onethinker_verl.data.dataset",
                "data.custom_cls.name=OneThinkerDataset",
                f"+data.cache_dir={tmp_path / 'cache'}",
                *overrides,
            ],
        )
    return config.data


@pytest.fixture(scope="module")
def processor():
    return tiny_qwen_vl_processor(" ".join(json.dumps(SAMPLE_ROWS).replace('"', " ").split()))


@pytest.fixture(scope="module")
def prepared_parquet(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("prepare_rl_script", REPO / "data_prep" / "prepare_rl.py")
    prepare_rl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_rl)
    out = tmp_path_factory.mktemp("prepared")
    prepare_rl.main(["--input", sample_file("rl_train.jsonl"), "--media-root", sample_dir(), "--output", str(out)])
    return str(out / "train.parquet")


def _by_id(dataset):
    return {dataset[i]["extra_info"]["id"]: dataset[i] for i in range(len(dataset))}


def test_prepared_parquet_and_raw_jsonl_give_the_same_items(tmp_path, prepared_parquet):
    config = data_config(tmp_path, f"+data.media_root={sample_dir()}", "+data.video_fps=1.0",
                         "+data.image_max_pixels=200704")
    from_parquet = create_rl_dataset([prepared_parquet], config, tokenizer=None, processor=object())
    from_raw = create_rl_dataset([sample_file("rl_train.jsonl")], config, tokenizer=None, processor=object())
    assert isinstance(from_raw, OneThinkerDataset) and len(from_raw) == len(from_parquet) == len(SAMPLE_ROWS)
    parquet_items, raw_items = _by_id(from_parquet), _by_id(from_raw)
    assert parquet_items.keys() == {row["problem_id"] for row in SAMPLE_ROWS}
    for row in SAMPLE_ROWS:
        item = raw_items[row["problem_id"]]
        assert item["raw_prompt"] == parquet_items[row["problem_id"]]["raw_prompt"]
        assert item["extra_info"]["problem_type"].lower() == row["problem_type"].lower()
        assert item["extra_info"]["data_type"] == row["data_type"]
        assert item["reward_model"]["ground_truth"] == row["answer"]
        (content,) = [message["content"] for message in item["raw_prompt"]]
        media = [part for part in content if part["type"] in ("image", "video")]
        expected = [(kind[:-1], os.path.join(sample_dir(), path)) for kind in ("images", "videos") for path in row.get(kind, [])]
        assert [(part["type"], part[part["type"]]) for part in media] == expected
        for part in media:
            if part["type"] == "video":
                assert part["fps"] == 1.0 and part["max_frames"] == MediaSettings().video_max_frames
            else:
                assert part["max_pixels"] == 200704 and part["min_pixels"] == MediaSettings().image_min_pixels


def test_collate_and_dataloader_over_both_inputs(tmp_path, prepared_parquet):
    config = data_config(tmp_path, f"+data.media_root={sample_dir()}")
    dataset = create_rl_dataset([prepared_parquet, sample_file("rl_train.jsonl")], config, None, object())
    loader = DataLoader(dataset, batch_size=8, collate_fn=collate_fn, shuffle=False)
    batches = list(loader)
    assert sum(len(batch["raw_prompt"]) for batch in batches) == 2 * len(SAMPLE_ROWS)
    first = batches[0]
    assert first["dummy_tensor"].shape == (8, 1)
    assert {info["problem_type"] for batch in batches for info in batch["extra_info"]} == {
        row["problem_type"] for row in SAMPLE_ROWS
    }
    assert all(source.startswith("onethinker/") for source in first["data_source"])


def test_configured_template_file_replaces_the_prompt(tmp_path):
    templates = (Path(sample_dir()).parent / "templates" / "default.yaml").read_text()
    custom = tmp_path / "custom.yaml"
    custom.write_text(templates.replace("options_header: \"Options:\"", "options_header: \"Pick one of:\""))
    config = data_config(tmp_path, f"+data.media_root={sample_dir()}", f"+data.prompt_templates={custom}")
    dataset = create_rl_dataset([sample_file("rl_train.jsonl")], config, None, object())
    item = _by_id(dataset)["sample-001"]
    text = next(part["text"] for part in item["raw_prompt"][0]["content"] if part["type"] == "text")
    assert "Pick one of:\nA." in text and "Options:" not in text


@pytest.fixture
def corpus_missing_a_video(tmp_path):
    copy = tmp_path / "sample"
    shutil.copytree(sample_dir(), copy, ignore=shutil.ignore_patterns("__*"))
    (copy / "videos" / "appear_blue.mp4").unlink()
    users = [row["problem_id"] for row in SAMPLE_ROWS if "videos/appear_blue.mp4" in row.get("videos", [])]
    return copy, users


def test_missing_media_is_an_error_naming_file_and_row(tmp_path, corpus_missing_a_video):
    copy, users = corpus_missing_a_video
    config = data_config(tmp_path, f"+data.media_root={copy}")
    with pytest.raises(FileNotFoundError) as caught:
        create_rl_dataset([str(copy / "rl_train.jsonl")], config, None, object())
    message = str(caught.value)
    assert "appear_blue.mp4" in message and users[0] in message and f"{len(users)} row(s)" in message


def test_skip_missing_media_drops_and_counts_rows(tmp_path, corpus_missing_a_video, caplog):
    copy, users = corpus_missing_a_video
    config = data_config(tmp_path, f"+data.media_root={copy}", "+data.skip_missing_media=true")
    with caplog.at_level(logging.WARNING, logger="onethinker_verl.data.dataset"):
        dataset = create_rl_dataset([str(copy / "rl_train.jsonl")], config, None, object())
    assert len(dataset) == len(SAMPLE_ROWS) - len(users) and dataset.skipped_missing_media == len(users)
    assert not set(users) & set(_by_id(dataset))
    assert any(f"skipped {len(users)} of {len(SAMPLE_ROWS)}" in record.getMessage() for record in caplog.records)


def test_invalid_raw_row_is_an_error_naming_file_row_and_reason(tmp_path):
    rows = SAMPLE_ROWS[:2] + [dict(SAMPLE_ROWS[2], problem_type="counting")]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    config = data_config(tmp_path, f"+data.media_root={sample_dir()}")
    with pytest.raises(ValueError, match=r"bad\.jsonl, row 3: unknown problem type: 'counting'"):
        create_rl_dataset([str(path)], config, None, object())


def _first_row(problem_type, data_type):
    return next(r for r in SAMPLE_ROWS if r["problem_type"] == problem_type and r["data_type"] == data_type)


def test_qwen_vl_processor_renders_image_and_video_rows_at_configured_fps(tmp_path, processor):
    config = data_config(
        tmp_path, f"+data.media_root={sample_dir()}", "data.filter_overlong_prompts=true",
        "data.max_prompt_length=100000", "+data.video_fps=2.0",
        # in-process: a forked datasets worker can deadlock on locks torch threads of this process hold
        "data.filter_overlong_prompts_workers=null",
    )
    # the length filter runs verl's processor path over every row, decoding every image and video
    dataset = create_rl_dataset([sample_file("rl_train.jsonl")], config, processor.tokenizer, processor)
    assert len(dataset) == len(SAMPLE_ROWS)
    items = _by_id(dataset)
    merge = processor.image_processor.merge_size ** 2
    for row in (_first_row("spatial grounding", "image"), _first_row("tracking", "video")):
        messages = items[row["problem_id"]]["raw_prompt"]
        images, videos, _ = asyncio.run(
            OneThinkerDataset.process_multi_modal_info(messages, image_patch_size=14, config=config)
        )
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert text.count("<|vision_start|>") == 1 and text.endswith("<|im_start|>assistant\n")
        inputs = build_multimodal_processor_inputs(processor, text=[text], images=images, videos=videos)
        ids = inputs["input_ids"][0]
        if row["data_type"] == "image":
            assert videos is None
            expected = int(inputs["image_grid_thw"].prod()) // merge
            assert int((ids == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()) == expected
        else:
            assert images is None
            (frames, metadata), = videos
            # 4-second clip sampled at the configured 2 fps, read by decord
            assert frames.shape[0] == 8 and metadata["video_backend"] == "decord"
            pads = int((ids == processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")).sum())
            assert pads == int(inputs["video_grid_thw"].prod()) // merge > 0


def test_decord_reads_every_sample_video_at_the_configured_fps():
    import decord
    from qwen_vl_utils import fetch_video

    for video in sorted(Path(sample_dir(), "videos").glob("*.mp4")):
        reader = decord.VideoReader(str(video))
        duration = len(reader) / reader.get_avg_fps()
        for fps in (1.0, 2.0):
            item = MediaSettings(video_fps=fps).video_item(str(video))
            frames, metadata = fetch_video(item, image_patch_size=14, return_video_metadata=True)
            assert frames.shape[0] == round(duration * fps) and metadata["video_backend"] == "decord"
            assert frames.shape[2] * frames.shape[3] <= item["max_pixels"]


def test_sft_parquet_is_read_by_verls_sft_dataset(tmp_path, processor):
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    spec = importlib.util.spec_from_file_location("prepare_sft_script", REPO / "data_prep" / "prepare_sft.py")
    prepare_sft = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_sft)
    out = tmp_path / "sft"
    prepare_sft.main(["--input", sample_file("sft_image.json"), sample_file("sft_video.json"),
                      "--media-root", sample_dir(), "--output", str(out)])
    dataset = MultiTurnSFTDataset(str(out / "train.parquet"), processor.tokenizer,
                                  {"pad_mode": "no_padding", "max_length": 100000}, processor=processor)
    assert len(dataset) == 4
    pads = {"image": "<|image_pad|>", "video": "<|video_pad|>"}
    for index, kind in ((0, "image"), (3, "video")):
        item = dataset[index]
        pad_id = processor.tokenizer.convert_tokens_to_ids(pads[kind])
        assert int((item["input_ids"] == pad_id).sum()) > 0
        assert int(item["loss_mask"].sum()) > 0
        assert isinstance(item["input_ids"], torch.Tensor)


def _with_prompt_lengths(source: str, target: Path, lengths: list[int]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    pq.write_table(table.append_column("prompt_length", pa.array(lengths, pa.int64())), target)
    return str(target)


def test_count_usable_rows_matches_the_built_dataset(tmp_path, prepared_parquet, corpus_missing_a_video, caplog):
    rows = len(SAMPLE_ROWS)
    lengths = [100 + 10 * i for i in range(rows)]
    with_lengths = _with_prompt_lengths(prepared_parquet, tmp_path / "lengths.parquet", lengths)
    copy, users = corpus_missing_a_video
    cases = [
        ([prepared_parquet], [f"+data.media_root={sample_dir()}"], -1, rows),
        ([prepared_parquet], [f"+data.media_root={sample_dir()}", "data.shuffle=true", "data.seed=3"], 7, 7),
        # offline length column: rows longer than max_prompt_length are dropped without decoding anything
        ([with_lengths], [f"+data.media_root={sample_dir()}", "data.max_prompt_length=150"], -1,
         sum(length <= 150 for length in lengths)),
        ([with_lengths], [f"+data.media_root={sample_dir()}", "data.max_prompt_length=150",
                          "+data.filter_by_prompt_length_column=false"], -1, rows),
        ([str(copy / "rl_train.jsonl")], [f"+data.media_root={copy}", "+data.skip_missing_media=true"], -1,
         rows - len(users)),
        ([str(copy / "rl_train.jsonl")], [f"+data.media_root={copy}", "+data.skip_missing_media=true",
                                          "data.shuffle=true", "data.seed=1"], 9, None),
    ]
    for files, overrides, max_samples, expected in cases:
        config = data_config(tmp_path, "data.filter_overlong_prompts=false", *overrides)
        counted = OneThinkerDataset.count_usable_rows(files, config, max_samples=max_samples)
        with caplog.at_level(logging.WARNING, logger="onethinker_verl.data.dataset"):
            built = OneThinkerDataset(files, None, config, processor=object(), max_samples=max_samples)
        assert counted == len(built), (overrides, max_samples)
        if expected is not None:
            assert counted == expected, (overrides, max_samples)
    dropped = sum(length > 150 for length in lengths)
    assert any(f"dropped {dropped} of {rows} rows whose prompt_length exceeds" in r.getMessage() for r in caplog.records)
    config = data_config(tmp_path, f"+data.media_root={copy}")
    with pytest.raises(FileNotFoundError, match="appear_blue.mp4"):
        OneThinkerDataset.count_usable_rows([str(copy / "rl_train.jsonl")], config)
    config = data_config(tmp_path, f"+data.media_root={sample_dir()}", "+data.filter_by_prompt_length_column=true")
    with pytest.raises(ValueError, match="no 'prompt_length' column"):
        OneThinkerDataset.count_usable_rows([prepared_parquet], config)
