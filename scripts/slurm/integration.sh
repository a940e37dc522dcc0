#!/usr/bin/env bash
# The cluster path of singlora, end to end on a real Slurm: a small width study is run once in a single process, then
# `singlora slurm sweep ... --shards 3` prints a submission script, which is submitted to the local cluster (an sbatch
# array of 3 shards and a merge job chained with afterok); when the merge job has finished, the merged results.csv and
# fits.csv must equal the single process's byte for byte. The same for a learning-rate study, and for `singlora verify`
# (two claims: its verdicts.csv and the tables of the studies behind them). Exits 0 only if every
# check passed; stops the cluster if (and only if) it started it.
#
#   scripts/slurm/integration.sh [BINARY]      (default target/release/singlora; CI builds it with cargo build --release)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="$(realpath "${1:-$here/../../target/release/singlora}")"
[ -x "$bin" ] || { echo "integration: no singlora binary at $bin (cargo build --release)" >&2; exit 1; }
state="${SINGLORA_SLURM_DIR:-${TMPDIR:-/tmp}/singlora-slurm}"
work="$(mktemp -d "${TMPDIR:-/tmp}/singlora-slurm-it.XXXXXX")"
started_here=0
if ! "$here/cluster.sh" status --dir "$state" >/dev/null 2>&1; then
  "$here/cluster.sh" start --dir "$state"
  started_here=1
fi
cleanup() {
  if [ "$started_here" = 1 ]; then "$here/cluster.sh" stop --dir "$state" || true; fi
}
trap cleanup EXIT
export SLURM_CONF="$state/slurm.conf"
# The jobs' files must be readable by Slurm's job user (root here) and by this script.
chmod 755 "$work"
failed=0
run_case() { # KIND NAME SETS...
  local kind="$1" name="$2"; shift 2
  local single="$work/$name-single" split="$work/$name-split"
  "$bin" "$kind" "$@" --out "$single" >/dev/null
  "$bin" slurm "$kind" "$@" --out "$split" --shards 3 --time 00:10:00 > "$work/$name-submit.sh"
  bash "$work/$name-submit.sh"
  read -r array merge < "$split/slurm/jobs"
  "$here/wait_job.sh" "$array" 300
  "$here/wait_job.sh" "$merge" 300
  local tables
  case "$kind" in
    sweep) tables="results.csv fits.csv" ;;
    lr) tables="lr_runs.csv lr_summary.csv lr_best.csv lr_drift.csv" ;;
    verify) tables="verdicts.csv balanced-sweep/results.csv balanced-sweep/fits.csv transformer-sweep/fits.csv synthetic/synthetic.csv" ;;
  esac
  for t in $tables; do
    if cmp -s "$single/$t" "$split/$t"; then
      echo "integration: ok   - $name: merged $t equals the single process's, byte for byte"
    else
      echo "integration: FAIL - $name: merged $t differs from the single process's"; failed=$((failed + 1))
    fi
  done
  local shards; shards=$(ls -d "$split"/shards/*-of-3 | wc -l)
  if [ "$shards" = 3 ]; then echo "integration: ok   - $name: 3 shard folders"
  else echo "integration: FAIL - $name: $shards shard folders"; failed=$((failed + 1)); fi
}
run_case sweep sweep --set 'widths=[16,32,64]' --set 'seeds=[0,1]' --set steps=3
run_case lr lr --set 'widths=[16,32]' --set 'seeds=[0]' --set steps=2 --set 'task.examples=16' \
  --set 'task.test_examples=16' --set 'lr_grid.rates={from=0.01,to=0.16,per_octave=1}' \
  --set 'lr_grid.loraplus.widths=[16]' --set 'lr_grid.loraplus.rates_a=[0.01,0.1]' --set 'lr_grid.loraplus.rates_b=[0.01,0.1]'
run_case verify verify --quick --claims C3,C7
rm -rf "$work"
if [ "$failed" = 0 ]; then echo "integration: all checks passed"; else echo "integration: $failed check(s) failed"; exit 1; fi
