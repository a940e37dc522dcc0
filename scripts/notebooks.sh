#!/usr/bin/env bash
# Executes every notebook in notebooks/ headless on quick studies, so that a renamed column, a changed table or a
# broken cell fails CI (issue 11). Usage: scripts/notebooks.sh BIN   (BIN: the singlora binary, target/release/singlora)
#
# 1. A virtual environment at $SINGLORA_NB_VENV (default target/notebooks-venv), created with `python3 -m venv` when
#    absent, with notebooks/requirements.txt installed by pip (from PyPI; nothing when already satisfied).
# 2. Quick studies with BIN into a temporary folder, removed at exit: sweep, lr (with its LoRA+ plane), limit and the
#    transformer sweep, three seeds each (Student's t needs two; three keep the intervals readable).
# 3. scripts/execute_notebooks.py runs each notebook on its study (01 and 02 also on the transformer study) and fails
#    if any cell fails or any notebook is left without a study; executed copies go to $SINGLORA_NB_OUT when set.
set -euo pipefail
usage="usage: scripts/notebooks.sh BIN (the singlora binary, e.g. target/release/singlora)"
[ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }
[ -x "$1" ] || { echo "scripts/notebooks.sh: invalid BIN = $1: expected an executable singlora binary" >&2; exit 2; }
BIN=$(realpath "$1")
cd "$(dirname "$0")/.."
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "scripts/notebooks.sh: python3 is $(python3 -V 2>&1); the notebooks need Python >= 3.11" >&2; exit 1; }
start=$SECONDS

VENV=${SINGLORA_NB_VENV:-target/notebooks-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r notebooks/requirements.txt
echo "notebooks: environment $VENV ready after $((SECONDS - start)) s"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
quick() { # quick NAME ARGS...: BIN ARGS --out WORK/NAME, its output shown only if it fails
    local name=$1
    shift
    "$BIN" "$@" --out "$WORK/$name" >"$WORK/$name.log" 2>&1 ||
        { cat "$WORK/$name.log" >&2; echo "scripts/notebooks.sh: the quick $name study failed" >&2; exit 1; }
}
seeds='seeds=[0,1,2]'
quick sweep sweep --set 'widths=[32,64,128,256]' --set "$seeds" --set steps=6
quick lr lr --set 'widths=[32,64,128]' --set "$seeds" --set steps=10 \
    --set 'lr_grid.rates={from=4e-3,to=0.256,per_octave=2}' --set 'lr_grid.loraplus.widths=[32,64]' \
    --set 'lr_grid.loraplus.rates_a={from=4e-3,to=0.256,per_octave=1}' \
    --set 'lr_grid.loraplus.rates_b={from=4e-3,to=0.256,per_octave=1}'
quick limit limit --set 'widths=[64,128,256]' --set "$seeds" --set steps=8
quick transformer sweep --config configs/transformer.toml --set 'widths=[16,32,64]' --set "$seeds" --set steps=4 \
    --set pretrain.steps=10
echo "notebooks: quick studies written after $((SECONDS - start)) s"

"$VENV/bin/python" scripts/execute_notebooks.py --all notebooks ${SINGLORA_NB_OUT:+--out "$SINGLORA_NB_OUT"} \
    notebooks/01_coordinate_check.ipynb="$WORK/sweep" \
    notebooks/01_coordinate_check.ipynb="$WORK/transformer" \
    notebooks/02_slopes.ipynb="$WORK/sweep" \
    notebooks/02_slopes.ipynb="$WORK/transformer" \
    notebooks/03_learning_rate.ipynb="$WORK/lr" \
    notebooks/04_limit.ipynb="$WORK/limit" \
    notebooks/05_transformer.ipynb="$WORK/transformer"
echo "notebooks: every notebook executed without error in $((SECONDS - start)) s"
