#!/usr/bin/env bash
# OneThinker SFT cold start on NNODES nodes, verl's SFT trainer under torchrun. Run the same command on every
# node, each with its NODE_RANK (0 on the node whose address is MASTER_ADDR):
#   NODE_RANK=0 MASTER_ADDR=<node 0 ip> NNODES=2 TRAIN_FILES=... bash launch_sft_multi_node.sh [HYDRA_OVERRIDE ...]
# Environment (defaults in brackets): NNODES [2]  N_GPUS [8 per node]  MASTER_PORT [29500]
#   TRAIN_FILES (required)  MEDIA_ROOT  MODEL_PATH [the recipe's]  OUTPUT_DIR [./outputs/onethinker_sft]
#   TRAIN_BATCH_SIZE [NNODES x N_GPUS: one sample per GPU, no accumulation, as the reference's 8 GPUs]
set -euo pipefail

NODE_RANK=${NODE_RANK:?set NODE_RANK (0 on the master node)}
MASTER_ADDR=${MASTER_ADDR:?set MASTER_ADDR=<ip of the NODE_RANK=0 node>}
MASTER_PORT=${MASTER_PORT:-29500}
TRAIN_FILES=${TRAIN_FILES:?set TRAIN_FILES=<prepare_sft.py output>/train.parquet}
NNODES=${NNODES:-2}
N_GPUS=${N_GPUS:-8}
OUTPUT_DIR=${OUTPUT_DIR:-$PWD/outputs/onethinker_sft}
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-$((NNODES * N_GPUS))}

args=(+recipe=onethinker_sft data.train_files="$TRAIN_FILES" data.train_batch_size="$TRAIN_BATCH_SIZE"
      trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$N_GPUS" trainer.default_local_dir="$OUTPUT_DIR")
[[ -n "${MODEL_PATH:-}" ]] && args+=(model.path="$MODEL_PATH")
[[ -n "${MEDIA_ROOT:-}" ]] && args+=(data.media_root="$MEDIA_ROOT")

cmd=(torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$N_GPUS"
     --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" -m verl.trainer.sft_trainer "${args[@]}" "$@")
# The start-up check (data, media, model) before torchrun starts any worker; the workers then skip it.
python -m onethinker_verl.sft.startup_check "${args[@]}" "$@"
export ONETHINKER_SFT_CHECKED=1
echo "Running: ${cmd[*]}"
exec "${cmd[@]}"
