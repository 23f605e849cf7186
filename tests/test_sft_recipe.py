"""recipes/onethinker_sft.yaml composed on verl's sft_trainer_engine config against the reference SFT run
(LLaMA-Factory examples/train_full/onethinker_qwen3_sft.yaml and HF Trainer defaults), the launch scripts,
and the freezing rules per model family."""

import os
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]

# The reference setting (source in the comment) -> the verl 0.9.1 key and value it must compose to.
REFERENCE = {
    "model.path": "Qwen/Qwen3-VL-8B-Instruct",  # model_name_or_path
    "model.lora_rank": 0,  # finetuning_type: full
    "model.freeze_vision_tower": True,  # freeze_vision_tower: true
    "model.freeze_multi_modal_projector": True,  # freeze_multi_modal_projector: true
    "model.enable_gradient_checkpointing": True,  # LLaMA-Factory default
    "model.override_config.attn_implementation": "flash_attention_2",  # flash_attn: fa2
    "engine.strategy": "fsdp2",  # deepspeed ZeRO-3 (sharded parameters, gradients, optimizer states)
    "engine.reshard_after_forward": True,  # ZeRO-3
    "engine.dtype": "bfloat16",  # bf16: true
    "optim.optimizer": "AdamW",  # HF default optim adamw_torch
    "optim.lr": 1.0e-5,  # learning_rate
    "optim.betas": [0.9, 0.999],  # HF defaults adam_beta1 / adam_beta2
    "optim.weight_decay": 1.0e-6,  # weight_decay
    "optim.clip_grad": 1.0,  # HF default max_grad_norm
    "optim.lr_scheduler_type": "cosine",  # lr_scheduler_type
    "optim.lr_warmup_steps_ratio": 0.02,  # warmup_ratio
    "optim.min_lr_ratio": 0.0,  # HF cosine decays to 0
    "data.micro_batch_size_per_gpu": 1,  # per_device_train_batch_size
    "data.train_batch_size": 8,  # 1 per device x 8 GPUs x gradient_accumulation_steps 1
    "trainer.n_gpus_per_node": 8,
    "trainer.nnodes": 1,
    "data.max_length": 16384,  # cutoff_len
    "data.image_max_pixels": 802816,  # image_max_pixels
    "data.video_fps": 2.0,  # video_fps
    "data.video_max_frames": 128,  # video_maxlen
    "data.video_max_pixels": 100352,  # video_max_pixels
    "trainer.total_epochs": 1,  # num_train_epochs
    "trainer.save_freq": 1000,  # save_steps
    "trainer.max_ckpt_to_keep": 30,  # save_total_limit
    "trainer.test_freq": -1,  # no eval
    "data.val_files": None,
}


@pytest.fixture(scope="module")
def sft_recipe():
    import verl  # noqa: F401  (loads the plugin: the recipe's resolver)
    from hydra import compose, initialize_config_dir

    from conftest import verl_config_dir

    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        return compose(config_name="sft_trainer_engine", overrides=["+recipe=onethinker_sft", "data.train_files=t.parquet"])


def test_composed_recipe_has_every_reference_setting(sft_recipe):
    composed = {key: OmegaConf.select(sft_recipe, key) for key in REFERENCE}
    composed = {key: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for key, v in composed.items()}
    assert composed == REFERENCE
    assert sft_recipe.data.custom_cls.name == "OneThinkerSFTDataset"
    assert "hf_model" in sft_recipe.checkpoint.save_contents  # the HF checkpoint the RL recipe starts from


def test_recipe_converts_with_verls_dataclasses(sft_recipe, tiny_vl_checkpoint):
    """verl's own conversion of the composed model / engine / optim sections (as SFTTrainer._build_config)."""
    from verl.utils.config import omega_conf_to_dataclass

    from onethinker_verl.sft.freeze import HFModelConfigWithFreezing, frozen_module_paths

    model_section = OmegaConf.merge(sft_recipe.model, {"path": str(tiny_vl_checkpoint("qwen3_vl"))})
    model_config = omega_conf_to_dataclass(model_section)
    assert isinstance(model_config, HFModelConfigWithFreezing)
    assert frozen_module_paths(model_config) == ("visual.patch_embed", "visual.blocks", "visual.merger")
    optim = omega_conf_to_dataclass(sft_recipe.optim)
    assert (optim.lr, optim.weight_decay, optim.lr_warmup_steps_ratio) == (1.0e-5, 1.0e-6, 0.02)
    assert omega_conf_to_dataclass(sft_recipe.engine).strategy == "fsdp2"


def test_train_files_are_required():
    import verl  # noqa: F401  (loads the plugin: the recipe's resolver)
    from hydra import compose, initialize_config_dir

    from conftest import verl_config_dir

    with initialize_config_dir(config_dir=verl_config_dir(), version_base=None):
        config = compose(config_name="sft_trainer_engine", overrides=["+recipe=onethinker_sft"])
    with pytest.raises(Exception, match="data.train_files"):
        OmegaConf.to_container(config.data, resolve=True)


def test_a_run_without_freezing_keys_is_untouched(tiny_vl_checkpoint):
    """verl's plain HFModelConfig (no keys) and the subclass with the keys off ask for nothing."""
    from verl.workers.config import HFModelConfig

    from onethinker_verl.sft.freeze import HFModelConfigWithFreezing, frozen_module_paths

    path = str(tiny_vl_checkpoint("qwen2_5_vl"))
    assert frozen_module_paths(HFModelConfig(path=path)) == ()
    assert frozen_module_paths(HFModelConfigWithFreezing(path=path)) == ()
    only_projector = HFModelConfigWithFreezing(path=path, freeze_multi_modal_projector=True, freeze_modules=["lm_head"])
    assert frozen_module_paths(only_projector) == ("visual.merger", "lm_head")


def test_freeze_paths_match_whole_name_components():
    from onethinker_verl.sft.freeze import is_frozen

    paths = ("visual.patch_embed", "visual.blocks", "visual.merger")
    assert is_frozen("model.visual.merger.mlp.0.weight", paths)
    assert is_frozen("visual.blocks.3.attn.qkv.weight", paths)  # Qwen2.5-VL's saved layout
    assert not is_frozen("model.visual.deepstack_merger_list.0.norm.weight", paths)
    assert not is_frozen("model.visual.pos_embed.weight", paths)
    assert not is_frozen("model.language_model.layers.0.mlp.up_proj.weight", paths)


def test_launch_scripts_run_torchrun_with_the_recipe(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "torchrun").write_text('#!/usr/bin/env bash\necho "torchrun $*"\n')
    (fake / "torchrun").chmod(0o755)
    # the scripts run the SFT start-up check before torchrun: real data, media folder and model folder
    import pyarrow as pa
    import pyarrow.parquet as pq

    train, media, model = tmp_path / "train.parquet", tmp_path / "media", tmp_path / "base"
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    pq.write_table(pa.table({"messages": [conversation]}), train)
    media.mkdir()
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen3_vl"}')
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", TRAIN_FILES=str(train),
               MEDIA_ROOT=str(media), MODEL_PATH=str(model))
    single = subprocess.run(["bash", str(REPO / "recipes" / "launch_sft_single_node.sh"), "optim.lr=2e-5"],
                            env=env, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    for part in ("--nproc_per_node=8", "-m verl.trainer.sft_trainer", "+recipe=onethinker_sft",
                 f"data.train_files={train}", f"data.media_root={media}", f"model.path={model}",
                 "data.train_batch_size=8", "optim.lr=2e-5"):
        assert part in single
    multi = subprocess.run(
        ["bash", str(REPO / "recipes" / "launch_sft_multi_node.sh")],
        env=dict(env, NODE_RANK="1", MASTER_ADDR="10.0.0.1", NNODES="4"), capture_output=True, text=True, check=True,
    ).stdout.splitlines()[-1]
    for part in ("--nnodes=4", "--node_rank=1", "--master_addr=10.0.0.1", "trainer.nnodes=4", "data.train_batch_size=32"):
        assert part in multi


def test_plugin_installs_the_freezing_glue_when_verl_imports_its_engine_workers(tmp_path):
    """In a fresh process: nothing of the glue before verl's engine workers are imported, installed after."""
    import sys

    script = (
        "import sys, verl\n"
        "assert 'onethinker_verl.sft.freeze' not in sys.modules\n"
        "import verl.workers.engine_workers\n"
        "from verl.workers.engine.fsdp.transformer_impl import FSDPEngine\n"
        "print(getattr(FSDPEngine, '_onethinker_freezing', False))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True"
