#!/usr/bin/env bash
# OneThinker SFT cold start on one node (the reference run: 8 GPUs), verl's SFT trainer under torchrun.
# Settings come from the environment (defaults in brackets):
#   TRAIN_FILES (required: data_prep/prepare_sft.py's train.parquet)  MEDIA_ROOT [as written in the data]
#   MODEL_PATH [the recipe's: Qwen/Qwen3-VL-8B-Instruct]  OUTPUT_DIR [./outputs/onethinker_sft]  N_GPUS [8]
#   TRAIN_BATCH_SIZE [N_GPUS: one sample per GPU, no accumulation, as the reference]
# Any extra arguments are passed to verl as Hydra overrides. The HF checkpoint for RL ends up in
# $OUTPUT_DIR/global_step_<N>/huggingface.
set -euo pipefail

TRAIN_FILES=${TRAIN_FILES:?set TRAIN_FILES=<prepare_sft.py output>/train.parquet}
OUTPUT_DIR=${OUTPUT_DIR:-$PWD/outputs/onethinker_sft}
N_GPUS=${N_GPUS:-8}
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-$N_GPUS}

args=(+recipe=onethinker_sft data.train_files="$TRAIN_FILES" data.train_batch_size="$TRAIN_BATCH_SIZE"
      trainer.nnodes=1 trainer.n_gpus_per_node="$N_GPUS" trainer.default_local_dir="$OUTPUT_DIR")
[[ -n "${MODEL_PATH:-}" ]] && args+=(model.path="$MODEL_PATH")
[[ -n "${MEDIA_ROOT:-}" ]] && args+=(data.media_root="$MEDIA_ROOT")

cmd=(torchrun --standalone --nnodes=1 --nproc_per_node="$N_GPUS" -m verl.trainer.sft_trainer "${args[@]}" "$@")
# The start-up check (data, media, model) before torchrun starts any worker; the workers then skip it.
python -m onethinker_verl.sft.startup_check "${args[@]}" "$@"
export ONETHINKER_SFT_CHECKED=1
echo "Running: ${cmd[*]}"
exec "${cmd[@]}"
