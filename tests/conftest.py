"""Shared test helpers: compose verl's real Hydra config with the onethinker recipe."""

import os
from pathlib import Path

import pytest

# Ray and verl print a lot on import; keep test logs readable and never try to reach a network service.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


def verl_config_dir() -> str:
    import verl

    return str(Path(verl.__file__).parent / "trainer" / "config")


def compose_recipe(*overrides: str, recipe: str = "onethinker"):
    """verl's ``ppo_trainer`` config composed with ``+recipe=<recipe>`` and ``overrides``, as main_ppo does."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        return compose(config_name="ppo_trainer", overrides=[f"+recipe={recipe}", *overrides])


@pytest.fixture
def recipe_config():
    return compose_recipe


PAD, EOS = "<pad>", "<eos>"


def train_tokenizer(texts):
    """A byte-level BPE tokenizer trained on ``texts`` (exact round trip), wrapped as verl loads one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[PAD, EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS)


# A Qwen2-VL processor around a tokenizer trained here; the chat template renders media items the way
# Qwen-VL's does (vision start, one pad token the processor expands, vision end).
QWEN_VL_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                          "<|image_pad|>", "<|video_pad|>"]
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_qwen_vl_processor(vocabulary_text: str):
    """A real ``Qwen2VLProcessor`` (default image and video processors) around a word-level tokenizer
    trained on ``vocabulary_text``; no download."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        [vocabulary_text], trainers.WordLevelTrainer(special_tokens=["[UNK]", *QWEN_VL_SPECIAL_TOKENS])
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(), tokenizer=fast, video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )


@pytest.fixture(scope="session")
def ray_transfer_queue():
    """A local Ray cluster with verl's TransferQueue, as the v1 trainer runs it (started once per session)."""
    import ray
    import transfer_queue as tq

    # Logical CPUs: TransferQueue's controller and storage units each reserve one.
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    tq.init()
    yield tq
    tq.close()
    ray.shutdown()
