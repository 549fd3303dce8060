#!/usr/bin/env bash
# One human-gated DAgger round on the simulated rig:
#   1. run the policy with the scripted operator's gate: every takeover is saved as a correction episode
#   2. train on demonstrations + corrections, continuing the run (corrections weighted)
#   3. evaluate the new policy on the same seeds as the old one
#
#   scripts/dagger_round.sh DATASET RUN [EXTRA_STEPS] [GATE] [EPISODES]
#   e.g. scripts/dagger_round.sh data/cube runs/cube 5000 drift 20
#
# DATASET must be the folder the run was trained on (corrections join it); RUN is tandem-train's --out.
set -euo pipefail
dataset=${1:?dataset folder}; run=${2:?training run folder}
extra_steps=${3:-5000}; gate=${4:-drift}; episodes=${5:-20}

before=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]+'/last/meta.json'))['step'])" "$run")
tandem-eval --checkpoint "$run/last" --episodes "$episodes" --seed 2000 --gate "$gate" --dataset "$dataset" \
    --json "$run/round_collect.json"
tandem-train --dataset "$dataset" --out "$run" --resume --steps $((before + extra_steps)) --correction-weight 2
tandem-eval --checkpoint "$run/last" --episodes 50 --seed 1000 --json "$run/round_eval.json"
