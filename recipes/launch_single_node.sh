#!/usr/bin/env bash
# OneThinker RL on one node. Settings come from the environment (defaults in brackets):
#   RECIPE [onethinker_smoke]  MODEL_PATH [the recipe's]  TRAIN_FILES / VAL_FILES [onethinker_smoke: the bundled sample;
#   onethinker requires TRAIN_FILES]
#   MEDIA_ROOT [the bundled sample's]  OUTPUT_DIR [./outputs/$RECIPE]  N_GPUS [8]
# Any extra arguments are passed to verl as Hydra overrides.
set -euo pipefail

RECIPE=${RECIPE:-onethinker_smoke}
OUTPUT_DIR=${OUTPUT_DIR:-$PWD/outputs/$RECIPE}
N_GPUS=${N_GPUS:-8}

args=(+recipe="$RECIPE" trainer.nnodes=1 trainer.n_gpus_per_node="$N_GPUS" trainer.default_local_dir="$OUTPUT_DIR")
[[ -n "${MODEL_PATH:-}" ]] && args+=(actor_rollout_ref.model.path="$MODEL_PATH")
[[ -n "${TRAIN_FILES:-}" ]] && args+=(data.train_files="$TRAIN_FILES")
[[ -n "${VAL_FILES:-}" ]] && args+=(data.val_files="$VAL_FILES")
[[ -n "${MEDIA_ROOT:-}" ]] && args+=(data.media_root="$MEDIA_ROOT")

cmd=(python -m verl.trainer.main_ppo "${args[@]}" "$@")
echo "Running: ${cmd[*]}"
exec "${cmd[@]}"
