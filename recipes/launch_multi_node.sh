#!/usr/bin/env bash
# OneThinker RL on a Ray cluster of NNODES nodes (the reference run: 4 x 8 GPUs).
#   On the head node:     ROLE=head   bash launch_multi_node.sh [HYDRA_OVERRIDE ...]
#   On every other node:  ROLE=worker HEAD_ADDRESS=<head ip>:6379 bash launch_multi_node.sh
# The head starts Ray, waits until NNODES nodes have joined, then starts training.
# Environment (defaults in brackets): RECIPE [onethinker]  NNODES [4]  N_GPUS [8]  RAY_PORT [6379]
#   MODEL_PATH  TRAIN_FILES (required by the onethinker recipe)  VAL_FILES  MEDIA_ROOT [the recipe's]
#   OUTPUT_DIR [./outputs/$RECIPE]
set -euo pipefail

ROLE=${ROLE:?set ROLE=head or ROLE=worker}
RECIPE=${RECIPE:-onethinker}
NNODES=${NNODES:-4}
N_GPUS=${N_GPUS:-8}
RAY_PORT=${RAY_PORT:-6379}
OUTPUT_DIR=${OUTPUT_DIR:-$PWD/outputs/$RECIPE}

if [[ "$ROLE" == worker ]]; then
    HEAD_ADDRESS=${HEAD_ADDRESS:?set HEAD_ADDRESS=<head ip>:$RAY_PORT}
    echo "Running: ray start --address=$HEAD_ADDRESS --num-gpus=$N_GPUS --block"
    exec ray start --address="$HEAD_ADDRESS" --num-gpus="$N_GPUS" --block
fi

echo "Running: ray start --head --port=$RAY_PORT --num-gpus=$N_GPUS"
ray start --head --port="$RAY_PORT" --num-gpus="$N_GPUS"
echo "Waiting for $NNODES nodes to join the Ray cluster..."
until [[ $(python -c "import ray; ray.init(address='auto', logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))") -ge $NNODES ]]; do
    sleep 10
done

args=(+recipe="$RECIPE" trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$N_GPUS" trainer.default_local_dir="$OUTPUT_DIR")
[[ -n "${MODEL_PATH:-}" ]] && args+=(actor_rollout_ref.model.path="$MODEL_PATH")
[[ -n "${TRAIN_FILES:-}" ]] && args+=(data.train_files="$TRAIN_FILES")
[[ -n "${VAL_FILES:-}" ]] && args+=(data.val_files="$VAL_FILES")
[[ -n "${MEDIA_ROOT:-}" ]] && args+=(data.media_root="$MEDIA_ROOT")

cmd=(python -m verl.trainer.main_ppo "${args[@]}" "$@")
echo "Running: ${cmd[*]}"
exec "${cmd[@]}"
