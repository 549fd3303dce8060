#!/usr/bin/env bash
# One human-gated DAgger round on the simulated rig:
#   1. keep a copy of the policy before the round: RUN/before_round_<N>
#   2. evaluate it, gated, on the evaluation seeds (from 1000)
#   3. run it with the scripted operator's gate on other seeds (from 2000): every takeover is saved as a
#      correction episode in DATASET
#   4. train on demonstrations + corrections, continuing the run (corrections weighted)
#   5. evaluate the new policy, gated, on the same evaluation seeds, and print the round report: the policy's
#      own success (no takeover), success with the operator's help, and takeovers, before and after
#
#   scripts/dagger_round.sh DATASET RUN [EXTRA_STEPS] [GATE] [EPISODES]
#   e.g. scripts/dagger_round.sh data/cube runs/cube 5000 drift 20
#
# DATASET must be the folder the run was trained on (corrections join it); RUN is tandem-train's --out.
# Reports go to RUN/round_<N>/ (before.json, collect.json, after.json, report.json).
# EVAL_ARGS (environment) is added to every tandem-eval, e.g. EVAL_ARGS="--episode-steps 200 --mode chunk".
set -euo pipefail
dataset=${1:?dataset folder}; run=${2:?training run folder}
extra_steps=${3:-5000}; gate=${4:-drift}; episodes=${5:-20}
read -r -a eval_args <<< "${EVAL_ARGS:-}"

if [[ ! -f "$run/last/meta.json" ]]; then
    echo "dagger_round.sh: $run/last is not a checkpoint; RUN must be a tandem-train --out folder" >&2
    exit 2
fi
round=1
while [[ -e "$run/before_round_$round" ]]; do round=$((round + 1)); done
before_policy="$run/before_round_$round"
reports="$run/round_$round"
mkdir -p "$reports"
cp -r "$run/last" "$before_policy"
echo "round $round: the policy before the round is kept in $before_policy"

steps=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]+'/meta.json'))['step'])" "$before_policy")
tandem-eval --checkpoint "$before_policy" --episodes "$episodes" --seed 1000 --gate "$gate" \
    --json "$reports/before.json" "${eval_args[@]}"
tandem-eval --checkpoint "$before_policy" --episodes "$episodes" --seed 2000 --gate "$gate" --dataset "$dataset" \
    --json "$reports/collect.json" "${eval_args[@]}"
tandem-train --dataset "$dataset" --out "$run" --resume --steps $((steps + extra_steps)) --correction-weight 2
tandem-eval --checkpoint "$run/last" --episodes "$episodes" --seed 1000 --gate "$gate" --json "$reports/after.json" \
    "${eval_args[@]}"
python3 -m deploy.round_report "$reports/before.json" "$reports/after.json" --json "$reports/report.json"
