#!/usr/bin/env bash
# Install tandem (editable) into the current Python environment.
#   scripts/setup.sh          the package
#   scripts/setup.sh dev      with pytest and ruff
# Where no torch is installed, the CPU build torch==2.13.0 goes in first: a bare
# "torch" requirement would pull several GB of CUDA packages. An existing torch
# (a GPU build, say) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if ! "$python" -c "import torch" >/dev/null 2>&1; then
    "$python" -m pip install --quiet "torch==2.13.0"
fi
extras="${1:-}"
"$python" -m pip install --quiet -e ".${extras:+[$extras]}"
