"""The tiny checkpoints of onethinker_verl/tiny_model.py load through the Auto classes and run a multimodal forward."""

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl", "qwen2_vl"])
def test_tiny_checkpoint_loads_and_runs_an_image_prompt(tiny_vl_checkpoint, family):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    path = tiny_vl_checkpoint(family)
    config = AutoConfig.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    assert config.model_type == family
    assert tokenizer.decode(tokenizer.encode("Reply {\"time\": [3.5, 7]} ok")) == "Reply {\"time\": [3.5, 7]} ok"
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    merged_patch = config.vision_config.patch_size * config.vision_config.spatial_merge_size
    assert int((inputs["input_ids"] == config.image_token_id).sum()) == (64 // merged_patch) ** 2
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


def test_command_line_writes_a_loadable_folder(tmp_path, caplog):
    from transformers import AutoConfig

    from onethinker_verl.tiny_model import main

    with caplog.at_level("INFO"):
        assert main([str(tmp_path / "m"), "--family", "qwen2_vl"]) == 0
    assert AutoConfig.from_pretrained(tmp_path / "m").model_type == "qwen2_vl"
    assert str(tmp_path / "m") in caplog.text
