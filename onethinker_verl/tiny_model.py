"""Tiny random Qwen3-VL, Qwen2.5-VL and Qwen2-VL checkpoints built on the spot (no download).

    from onethinker_verl.tiny_model import build_tiny_vl_checkpoint
    path = build_tiny_vl_checkpoint("qwen3_vl", tmp_path / "qwen3_vl")
    AutoModelForImageTextToText.from_pretrained(path); AutoTokenizer.from_pretrained(path)
    AutoProcessor.from_pretrained(path)

Each checkpoint is the real transformers model class (vision tower with patch embedding, blocks and merger,
Qwen3-VL's position embedding and deepstack mergers, multimodal rotary positions) at toy sizes, with a
byte-level BPE tokenizer carrying the Qwen chat special tokens and the model family's real processor class.
The tokenizer encodes any text (byte fallback), so prompts and answers of any task can be tokenised. The
processors keep the families' real patch sizes (Qwen3-VL 16, Qwen2.5-VL and Qwen2-VL 14), merge size 2 and temporal
patch 2, and lower only the minimum pixel budgets, so a 64x64 image or frame stays a few tokens.

The tests, the CPU loop and the miniature pipeline use it; from a shell:

    python -m onethinker_verl.tiny_model FOLDER --family qwen3_vl

Within a test session, use the ``tiny_vl_checkpoint`` fixture of tests/conftest.py: it builds each family
once (about a second) and hands out the same folder.
"""

import argparse
import logging
from pathlib import Path

from onethinker_verl.dry_run import QWEN_VL_CHAT_TEMPLATE, QWEN_VL_SPECIAL_TOKENS

logger = logging.getLogger(__name__)

FAMILIES = ("qwen3_vl", "qwen2_5_vl", "qwen2_vl")

# Text the tokenizer's merges are learnt from; bytes outside it still encode (byte-level BPE).
_VOCABULARY_TEXT = (
    "<think>Looking at the frames carefully, the answer follows.</think><answer>A</answer> "
    'Options: A. red B. blue C. green D. yellow {"boxes": [12, 30, 140, 200], "time": [1.5, 4.0]} '
    "What is shown in the image? Describe the video. How many objects are there? 0123456789 "
    "system user assistant You are a helpful assistant. seconds"
)

# Toy sizes shared by both families; the language model is large enough for multimodal rotary sections.
_TEXT_SIZES = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    max_position_embeddings=4096,
)
_HEAD_DIM = 16  # hidden_size / num_attention_heads; rotary sections below split head_dim / 2 = 8 pairs
VOCAB_SIZE = 512  # upper bound of the BPE vocabulary; the model's embedding has len(tokenizer) rows


def tiny_vl_tokenizer(vocabulary_text: str = _VOCABULARY_TEXT):
    """Byte-level BPE tokenizer with the Qwen-VL special tokens, eos ``<|im_end|>``, pad ``<|endoftext|>``
    and a Qwen-style chat template (image / video items become vision start, one pad token, vision end)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(QWEN_VL_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # the progress bar prints blank lines into logs
    )
    tokenizer.train_from_iterator([vocabulary_text], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )


def tiny_vl_processor(family: str, tokenizer):
    """The family's real processor class around ``tokenizer``; minimum pixel budgets lowered to one merged
    patch so tiny test images are not upscaled."""
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    _check_family(family)
    if family == "qwen3_vl":
        unit = 16 * 2  # patch size x merge size
        image_processor = Qwen2VLImageProcessor(
            patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3,
            size={"shortest_edge": unit * unit, "longest_edge": 16384 * unit * unit},
        )
        video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": unit * unit, "longest_edge": 768 * unit * unit})
        return Qwen3VLProcessor(image_processor, tokenizer, video_processor, chat_template=QWEN_VL_CHAT_TEMPLATE)
    unit = 14 * 2
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": unit * unit, "longest_edge": 12845056})
    video_processor = Qwen2VLVideoProcessor(size={"shortest_edge": unit * unit, "longest_edge": 12845056})
    processor_class = Qwen2_5_VLProcessor if family == "qwen2_5_vl" else Qwen2VLProcessor
    return processor_class(image_processor, tokenizer, video_processor, chat_template=QWEN_VL_CHAT_TEMPLATE)


def tiny_vl_config(family: str, tokenizer):
    """A toy-sized config of the family, its special token ids taken from ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    _check_family(family)
    token_ids = {
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }
    text = dict(
        _TEXT_SIZES, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    if family == "qwen3_vl":
        text_config = dict(
            text, head_dim=_HEAD_DIM,
            rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [4, 2, 2],
                             "mrope_interleaved": True},
        )
        vision_config = dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
            temporal_patch_size=2, out_hidden_size=_TEXT_SIZES["hidden_size"], num_position_embeddings=64,
            # deepstack features join the language model after layer i; only layer 0's reach the answer tokens of
            # a two-layer model through attention (layer 1's would touch image positions only)
            deepstack_visual_indexes=[0],
        )
        return Qwen3VLConfig(text_config=text_config, vision_config=vision_config, tie_word_embeddings=False,
                             **token_ids)
    text_config = dict(
        text, rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
    )
    if family == "qwen2_vl":
        vision_config = dict(
            depth=2, embed_dim=32, mlp_ratio=2, num_heads=2, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, hidden_size=_TEXT_SIZES["hidden_size"],
        )
        return Qwen2VLConfig(text_config=text_config, vision_config=vision_config, tie_word_embeddings=False,
                             **token_ids)
    vision_config = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2,
        temporal_patch_size=2, tokens_per_second=2, window_size=112, fullatt_block_indexes=[1],
        out_hidden_size=_TEXT_SIZES["hidden_size"],
    )
    return Qwen2_5_VLConfig(text_config=text_config, vision_config=vision_config, tie_word_embeddings=False,
                            **token_ids)


def build_tiny_vl_checkpoint(family: str, folder, seed: int = 0) -> Path:
    """Write a random ``family`` model (float32) with its tokenizer and processor to ``folder``; return it.

    ``from_pretrained(folder)`` then works for ``AutoModelForImageTextToText``, ``AutoTokenizer``,
    ``AutoProcessor`` and ``AutoConfig``. The weights depend only on ``seed``.
    """
    import torch
    from transformers import (
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLForConditionalGeneration,
        Qwen3VLForConditionalGeneration,
    )

    folder = Path(folder)
    tokenizer = tiny_vl_tokenizer()
    config = tiny_vl_config(family, tokenizer)
    model_class = {
        "qwen3_vl": Qwen3VLForConditionalGeneration,
        "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
        "qwen2_vl": Qwen2VLForConditionalGeneration,
    }[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tiny_vl_processor(family, tokenizer).save_pretrained(folder)
    logger.info("tiny random %s model written to %s", family, folder)
    return folder


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m onethinker_verl.tiny_model",
        description="Write a tiny random Qwen-VL model (with tokenizer and processor) to FOLDER.",
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--family", choices=FAMILIES, default="qwen3_vl")
    parser.add_argument("--seed", type=int, default=0, help="the weights depend only on this seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_tiny_vl_checkpoint(args.family, args.folder, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
