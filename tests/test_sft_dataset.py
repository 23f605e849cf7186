"""OneThinkerSFTDataset (data.custom_cls of recipes/onethinker_sft.yaml) on tiny Qwen3-VL and Qwen2.5-VL:
image and video rows of the bundled sample, as data_prep/prepare_sft.py writes them, with the recipe's data
settings: token counts, loss mask, frame sampling, and position ids equal to the model's own get_rope_index."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from onethinker_verl.data.sample import sample_dir, sample_file

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("qwen3_vl", "qwen2_5_vl")
PADS = {"image": "<|image_pad|>", "video": "<|video_pad|>"}


def _prepare_sft():
    spec = importlib.util.spec_from_file_location("prepare_sft_script", REPO / "data_prep" / "prepare_sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(out: Path, *inputs: str) -> Path:
    """prepare_sft.py output with media paths relative to the media root (the dataset resolves them)."""
    _prepare_sft().main(["--input", *inputs, "--media-root", sample_dir(), "--output", str(out), "--relative-paths"])
    return out / "train.parquet"


@pytest.fixture(scope="module")
def recipe_data_config():
    """The data section of verl's sft_trainer_engine config composed with +recipe=onethinker_sft."""
    import verl  # noqa: F401  (loads the plugin: the recipe's resolver)
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from conftest import verl_config_dir

    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        config = compose(config_name="sft_trainer_engine", overrides=["+recipe=onethinker_sft", "data.train_files=x"])
    return OmegaConf.to_container(config.data, resolve=True)


@pytest.fixture(scope="module")
def train_parquet(tmp_path_factory):
    return prepare(tmp_path_factory.mktemp("sft"), sample_file("sft_image.json"), sample_file("sft_video.json"))


@pytest.fixture(scope="module")
def family_tools(tiny_vl_checkpoint):
    """Per family: tokenizer and processor as verl's SFT trainer loads them, and the model itself."""
    from transformers import AutoModelForImageTextToText
    from verl.utils import hf_processor, hf_tokenizer

    tools = {}
    for family in FAMILIES:
        path = tiny_vl_checkpoint(family)
        tools[family] = (hf_tokenizer(path), hf_processor(path), AutoModelForImageTextToText.from_pretrained(path))
    return tools


def make_dataset(parquet, family_tools, family, data_config, **overrides):
    from onethinker_verl.sft.dataset import OneThinkerSFTDataset

    tokenizer, processor, _ = family_tools[family]
    config = {**data_config, "media_root": sample_dir(), **overrides}
    return OneThinkerSFTDataset(str(parquet), tokenizer, config, processor=processor)


def assert_positions_are_the_models(item, family_tools, family):
    tokenizer, processor, model = family_tools[family]
    ids, mm = item["input_ids"], item["multi_modal_inputs"]
    token_types = torch.zeros_like(ids)
    token_types[ids == processor.image_token_id] = 1
    token_types[ids == processor.video_token_id] = 2
    keys = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")
    expected, _ = model.model.get_rope_index(
        input_ids=ids[None], mm_token_type_ids=token_types[None], **{k: mm[k] for k in keys if k in mm}
    )
    assert item["position_ids"].shape == (4, ids.shape[0])
    assert torch.equal(item["position_ids"][0], torch.arange(ids.shape[0]))
    assert torch.equal(item["position_ids"][1:], expected[:, 0])
    # the model accepts the row as the trainer hands it over
    with torch.no_grad():
        logits = model(input_ids=ids[None], mm_token_type_ids=token_types[None], **mm).logits
    assert torch.isfinite(logits).all()


def assert_loss_mask_is_the_answer(item, tokenizer, row):
    answer = row["messages"][-1]["content"]
    trained = tokenizer.decode(item["input_ids"][item["loss_mask"] == 1])
    assert trained == answer + "<|im_end|>\n"


@pytest.mark.parametrize("family", FAMILIES)
def test_image_row_tokens_mask_and_positions(train_parquet, family_tools, recipe_data_config, family):
    tokenizer, processor, model = family_tools[family]
    dataset = make_dataset(train_parquet, family_tools, family, recipe_data_config)
    rows = pq.read_table(train_parquet).to_pylist()
    index = next(i for i, row in enumerate(rows) if row["images"])
    item = dataset[index]
    (grid,) = item["multi_modal_inputs"]["image_grid_thw"].tolist()
    merge = model.config.vision_config.spatial_merge_size
    assert int((item["input_ids"] == processor.image_token_id).sum()) == grid[0] * grid[1] * grid[2] // merge**2
    image = Image.open(Path(sample_dir()) / rows[index]["images"][0]["image"])
    patch = model.config.vision_config.patch_size
    # the image is small: kept at its size, rounded to whole merged patches
    assert (grid[1] * patch, grid[2] * patch) == tuple(round(s / (patch * merge)) * patch * merge for s in image.size[::-1])
    assert_loss_mask_is_the_answer(item, tokenizer, rows[index])
    assert_positions_are_the_models(item, family_tools, family)


@pytest.mark.parametrize("family", FAMILIES)
def test_video_row_keeps_its_sampled_frames_and_real_time(train_parquet, family_tools, recipe_data_config, family):
    """The sample videos last 4 s (32 frames at 8 fps): at the recipe's 2 fps that is 8 frames, 4 temporal
    patches. (verl's own dataset assumes 24 fps here: 4 frames for Qwen3-VL, 0.083 s per patch for Qwen2.5-VL.)"""
    tokenizer, processor, model = family_tools[family]
    dataset = make_dataset(train_parquet, family_tools, family, recipe_data_config)
    rows = pq.read_table(train_parquet).to_pylist()
    index = next(i for i, row in enumerate(rows) if row["videos"])
    item = dataset[index]
    mm = item["multi_modal_inputs"]
    (grid,) = mm["video_grid_thw"].tolist()
    assert grid[0] == 4
    merge = model.config.vision_config.spatial_merge_size
    assert int((item["input_ids"] == processor.video_token_id).sum()) == grid[0] * grid[1] * grid[2] // merge**2
    text = tokenizer.decode(item["input_ids"])
    if family == "qwen3_vl":
        # frames 0, 4, 9, 13, 18, 22, 27, 31 of 32 at 8 fps; each temporal patch is stamped with its mean time
        assert [part.split(" seconds>")[0] for part in text.split("<")[1:] if " seconds>" in part] == [
            "0.2", "1.4", "2.5", "3.6"
        ]
    else:
        assert mm["second_per_grid_ts"].tolist() == [1.0]  # 2 frames per patch at 2 fps
    assert_loss_mask_is_the_answer(item, tokenizer, rows[index])
    assert_positions_are_the_models(item, family_tools, family)


def test_recipe_media_budgets_apply_to_every_item(tmp_path, family_tools, recipe_data_config):
    """A 1200x1000 image (1.2 Mpx) is cut to the reference's 802,816 pixels; video_max_frames caps frames."""
    _, _, model = family_tools["qwen3_vl"]
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1000, 1200, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    source = tmp_path / "rows.json"
    video_row = json.loads(Path(sample_file("sft_video.json")).read_text())[0]
    video_row["videos"] = [str(Path(sample_dir()) / video_row["videos"][0])]
    rows = [
        {"messages": [{"role": "user", "content": "<image>What is shown?"}, {"role": "assistant", "content": "noise"}],
         "images": [str(tmp_path / "big.png")]},
        video_row,
    ]
    source.write_text(json.dumps(rows))
    parquet = prepare(tmp_path / "out", str(source))
    dataset = make_dataset(parquet, family_tools, "qwen3_vl", recipe_data_config, video_max_frames=4)
    assert dataset.media_settings.image_max_pixels == 802816 and dataset.media_settings.video_max_pixels == 100352
    (grid,) = dataset[0]["multi_modal_inputs"]["image_grid_thw"].tolist()
    pixels = grid[1] * grid[2] * model.config.vision_config.patch_size**2
    assert 802816 * 0.8 < pixels <= 802816
    assert dataset[1]["multi_modal_inputs"]["video_grid_thw"].tolist()[0][0] == 2  # 4 frames / 2 per patch


def test_missing_media_is_an_error_naming_the_row_or_a_counted_skip(tmp_path, family_tools, recipe_data_config):
    rows = json.loads(Path(sample_file("sft_image.json")).read_text())
    rows[1]["images"] = ["images/not_there.png"]
    rows[1]["id"] = "lost-one"
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(rows))
    _prepare_sft().main(["--input", str(source), "--output", str(tmp_path / "out"), "--relative-paths",
                         "--check-media", "off"])
    parquet = tmp_path / "out" / "train.parquet"
    with pytest.raises(FileNotFoundError, match=r"id='lost-one'.*not_there\.png.*skip_missing_media"):
        make_dataset(parquet, family_tools, "qwen2_5_vl", recipe_data_config)
    dataset = make_dataset(parquet, family_tools, "qwen2_5_vl", recipe_data_config, skip_missing_media=True)
    assert len(dataset) == len(rows) - 1 and dataset.skipped_missing_media == 1
    assert all("not_there" not in json.dumps(dataset[i]["input_ids"].tolist()) for i in range(len(dataset)))


def test_unreadable_media_found_at_start_up_with_decode_check(tmp_path, family_tools, recipe_data_config):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    rows = [{"messages": [{"role": "user", "content": "<image>Q?"}, {"role": "assistant", "content": "A"}],
             "images": ["broken.png"], "id": "broken-row"}]
    readable = json.loads(Path(sample_file("sft_image.json")).read_text())[0]
    readable["images"] = [str(Path(sample_dir()) / readable["images"][0])]
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(rows + [readable]))
    _prepare_sft().main(["--input", str(source), "--output", str(tmp_path / "out"), "--relative-paths",
                         "--check-media", "off"])
    parquet = tmp_path / "out" / "train.parquet"
    config = {**recipe_data_config, "media_root": str(tmp_path)}
    from onethinker_verl.sft.dataset import OneThinkerSFTDataset

    tokenizer, processor, _ = family_tools["qwen3_vl"]
    # the default start-up check only stats files: the broken one fails when read, naming its row
    dataset = OneThinkerSFTDataset(str(parquet), tokenizer, config, processor=processor)
    with pytest.raises(ValueError, match=r"id='broken-row'.*cannot read image"):
        dataset[0]
    with pytest.raises(FileNotFoundError, match=r"id='broken-row'.*media unreadable"):
        OneThinkerSFTDataset(str(parquet), tokenizer, {**config, "check_media_on_load": "decode"}, processor=processor)


@pytest.mark.parametrize("family", FAMILIES)
def test_processor_loaded_without_verl_gets_the_same_positions(
    train_parquet, family_tools, recipe_data_config, tiny_vl_checkpoint, family
):
    """AutoProcessor has no bound get_rope_index: the dataset gets the model's own from the same folder."""
    from transformers import AutoProcessor

    from onethinker_verl.sft.dataset import OneThinkerSFTDataset

    tokenizer, processor, _ = family_tools[family]
    plain = AutoProcessor.from_pretrained(tiny_vl_checkpoint(family))
    assert not hasattr(plain, "get_rope_index")
    config = {**recipe_data_config, "media_root": sample_dir()}
    with_model = OneThinkerSFTDataset(str(train_parquet), tokenizer, config, processor=processor)
    without = OneThinkerSFTDataset(str(train_parquet), tokenizer, config, processor=plain)
    for index in range(len(with_model)):
        assert torch.equal(with_model[index]["position_ids"], without[index]["position_ids"])


def test_verls_own_sft_dataset_still_loses_the_video_timing(train_parquet, family_tools):
    """The gap this dataset bridges, on the same video row with verl 0.9.1's MultiTurnSFTDataset: Qwen3-VL fails
    computing position ids, Qwen2.5-VL gets 1/12 s per temporal patch. When this fails, verl has fixed it."""
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    rows = pq.read_table(train_parquet).to_pylist()
    index = next(i for i, row in enumerate(rows) if row["videos"])
    # verl's dataset has no media root: give it absolute paths
    absolute = pq.read_table(train_parquet).to_pandas()
    absolute["videos"] = [[{**v, "video": str(Path(sample_dir()) / v["video"])} for v in videos]
                          for videos in absolute["videos"]]
    path = Path(train_parquet).with_name("absolute_paths.parquet")
    absolute.to_parquet(path)
    config = {"pad_mode": "no_padding", "max_length": 100000}
    datasets = {
        family: MultiTurnSFTDataset(str(path), family_tools[family][0], config, processor=family_tools[family][1])
        for family in FAMILIES
    }
    with pytest.raises(IndexError):
        datasets["qwen3_vl"][index]
    seconds = datasets["qwen2_5_vl"][index]["multi_modal_inputs"]["second_per_grid_ts"].tolist()
    assert seconds == [pytest.approx(2 / 24)]
