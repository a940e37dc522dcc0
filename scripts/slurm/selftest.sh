#!/usr/bin/env bash
# shellcheck disable=SC2016 # the single-quoted job commands and bash -c bodies expand in the job / child shell
# End-to-end check of the local Slurm cluster: an sbatch array job plus a merge job chained with afterok.
#
#   scripts/slurm/selftest.sh [--dir STATE_DIR] [--out JOB_OUTPUT_DIR] [--timeout SECONDS]
#
# Starts the cluster (scripts/slurm/cluster.sh) unless it is already running, submits
#   1. --array=0-3 --cpus-per-task=1 --mem=64M: each task writes "SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT user"
#      into task_<id>.txt, with start/end times;
#   2. a merge job, --dependency=afterok:<array>, that concatenates them into merged.txt;
#   3. a failing pair: an array whose task 1 exits 1, and an afterok job on it, which must be cancelled;
# waits for them with wait_job.sh, checks every result, stops the cluster if (and only if) it started it, and exits
# 0 only if every check passed. Job output goes to JOB_OUTPUT_DIR (default STATE_DIR/jobs/selftest-<time>).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${SINGLORA_SLURM_DIR:-${TMPDIR:-/tmp}/singlora-slurm}"
out=""
timeout=120
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    *) echo "usage: $0 [--dir STATE_DIR] [--out JOB_OUTPUT_DIR] [--timeout SECONDS]" >&2; exit 2 ;;
  esac
done
dir="$(realpath -m -- "$dir")"
now_ms() { date +%s%3N; }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
T0="$(now_ms)"
passed=0; failed=0
check() { # DESCRIPTION COMMAND...
  local what="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "selftest: ok   - $what"
  else failed=$((failed + 1)); echo "selftest: FAIL - $what"; fi
}

started_here=0
stop_if_started() {
  local rc=$?
  if [ "$started_here" = 1 ]; then
    local t; t="$(now_ms)"
    bash "$here/cluster.sh" stop --dir "$dir" || rc=1
    echo "selftest: stop took $(since "$t")s"
  fi
  echo "selftest: total $(since "$T0")s"
  exit $rc
}
trap stop_if_started EXIT

if bash "$here/cluster.sh" status --dir "$dir" >/dev/null 2>&1; then
  echo "selftest: using the cluster already running in $dir (it will be left running)"
else
  t="$(now_ms)"
  started_here=1
  bash "$here/cluster.sh" start --dir "$dir" || { echo "selftest: FAIL - the cluster did not start"; exit 1; }
  echo "selftest: install+start took $(since "$t")s"
fi
export SLURM_CONF="$dir/slurm.conf"
# shellcheck source=SCRIPTDIR/wait_job.sh
source "$here/wait_job.sh"

out="$(realpath -m -- "${out:-$dir/jobs/selftest-$(date +%Y%m%d-%H%M%S)-$$}")"
mkdir -p "$out"
echo "selftest: job output in $out"
cd "$out"
tj="$(now_ms)"

cat >"$out/task.sh" <<'EOF'
#!/bin/bash
set -eu
start=$(date +%s%N)
sleep 1
printf '%s %s %s\n' "$SLURM_ARRAY_TASK_ID" "$SLURM_ARRAY_TASK_COUNT" "$(id -un)" >"task_$SLURM_ARRAY_TASK_ID.txt"
echo "$start $(date +%s%N)" >"times_$SLURM_ARRAY_TASK_ID.txt"
EOF
cat >"$out/merge.sh" <<'EOF'
#!/bin/bash
set -eu
date +%s%N >merge_start.txt
for i in 0 1 2 3; do cat "task_$i.txt"; done >merged.txt
EOF
array="$(sbatch --parsable --job-name=selftest-array --array=0-3 --cpus-per-task=1 --mem=64M \
  --chdir="$out" --output="$out/array_%A_%a.out" "$out/task.sh")"
merge="$(sbatch --parsable --job-name=selftest-merge --dependency="afterok:$array" --cpus-per-task=1 \
  --chdir="$out" --output="$out/merge_%j.out" "$out/merge.sh")"
bad="$(sbatch --parsable --job-name=selftest-bad --array=0-1 --cpus-per-task=1 --chdir="$out" \
  --output="$out/bad_%A_%a.out" --wrap 'exit $SLURM_ARRAY_TASK_ID')"
never="$(sbatch --parsable --job-name=selftest-never --dependency="afterok:$bad" --chdir="$out" \
  --output="$out/never_%j.out" --wrap 'touch never_ran_but_did')"
echo "selftest: submitted array $array, merge $merge (afterok:$array), failing array $bad, dependent $never (afterok:$bad)"

check "array job $array: all 4 tasks COMPLETED" wait_job "$array" "$timeout"
check "merge job $merge: COMPLETED" wait_job "$merge" "$timeout"
check "failing array $bad: wait_job reports failure" bash -c '! "$0/wait_job.sh" "$1" "$2"' "$here" "$bad" "$timeout"
check "dependent of the failing array $never: never ran, cancelled" \
  bash -c '"$0/wait_job.sh" "$1" "$2" | grep -q "^$1 CANCELLED" && [ ! -e never_ran_but_did ]' "$here" "$never" "$timeout"

expected="$(printf '%s 4 root\n' 0 1 2 3)"
for i in 0 1 2 3; do
  check "task $i wrote SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=4 as root" \
    test "$(cat "task_$i.txt" 2>/dev/null)" = "$i 4 root"
done
check "merged.txt is the 4 task files in order" test "$(cat merged.txt 2>/dev/null)" = "$expected"
# The merge must have started after every array task ended (afterok, not just "submitted later").
merge_after() {
  local m e; m="$(cat merge_start.txt)"
  for i in 0 1 2 3; do e="$(awk '{print $2}' "times_$i.txt")"; [ "$m" -ge "$e" ] || return 1; done
}
check "merge started after every task ended" merge_after
# 4 one-CPU tasks of 1 s on $(nproc) CPUs: never more than nproc at once.
max_parallel() {
  local t; t="$(cat times_*.txt | awk '{print $1, 1; print $2, -1}' | sort -k1,1n -k2,2n |
    awk '{c += $2; if (c > m) m = c} END {print m}')"
  echo "selftest: at most $t tasks ran at once (node has $(nproc) CPUs)"
  [ "$t" -ge 1 ] && [ "$t" -le "$(nproc)" ]
}
check "array tasks ran at most nproc at a time" max_parallel
echo "selftest: jobs took $(since "$tj")s"
echo "selftest: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
