#!/usr/bin/env bash
# Wait until a Slurm job (and every task of it, if it is an array job) has left the queue; report final states.
#
#   scripts/slurm/wait_job.sh JOBID [TIMEOUT_SECONDS]       (JOBID: 12, an array's 12, or one task 12_3)
#   source scripts/slurm/wait_job.sh; wait_job JOBID [TIMEOUT_SECONDS]
#
# Prints one line per job or array task, `JOBID[_TASK] STATE ExitCode=N:S`, then a summary line. Returns 0 only if
# every one is COMPLETED; 1 if any ended in another state (FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ...)
# or its dependency can never be satisfied; 2 on timeout (default 600 s) or when the job is unknown.
#
# How: this cluster has no slurmdbd, so no sacct (AccountingStorageType=accounting_storage/none). States come from
# `scontrol show job -o` (finished jobs stay there for MinJobAge, 3600 s in cluster.sh's slurm.conf) and
# `squeue` (a job is done only when squeue no longer lists it: COMPLETING still counts). If the controller has
# already forgotten the job, the job-completion log (JobCompType=jobcomp/filetxt) is read instead.
# SLURM_CONF must point at the cluster (cluster.sh prints the export line); if it is unset, the default state
# folder's slurm.conf is used. SINGLORA_SLURM_POLL sets the poll interval (default 0.5 s).

wait_job() {
  local job="${1:-}" timeout="${2:-600}" poll="${SINGLORA_SLURM_POLL:-0.5}"
  if [ -z "$job" ] || ! [[ "$job" =~ ^[0-9]+(_[0-9]+)?$ ]] || ! [[ "$timeout" =~ ^[0-9]+$ ]]; then
    echo "usage: wait_job.sh JOBID [TIMEOUT_SECONDS]" >&2; return 2
  fi
  if [ -z "${SLURM_CONF:-}" ]; then
    local def="${SINGLORA_SLURM_DIR:-${TMPDIR:-/tmp}/singlora-slurm}/slurm.conf"
    [ -f "$def" ] || { echo "wait_job: SLURM_CONF is not set and $def does not exist" >&2; return 2; }
    export SLURM_CONF="$def"
  fi
  local deadline=$((SECONDS + timeout)) records queued out rc
  while :; do
    # (written so that a caller's `set -e` does not end the caller when scontrol fails)
    records="$(_wj_records "$job")" && rc=0 || rc=$?
    if [ $rc -eq 3 ]; then
      # Unknown to the controller: purged (MinJobAge) or never existed. Try the completion log.
      records="$(_wj_jobcomp "$job")"
      if [ -z "$records" ]; then echo "wait_job: job $job is unknown to slurmctld and to the job-completion log" >&2; return 2; fi
      queued=""
    elif [ $rc -ne 0 ]; then
      records=""; queued="?"   # controller not answering right now: keep trying until the deadline
    else
      queued="$(squeue -h -j "${job%%_*}" -o '%i %T' 2>/dev/null | awk -v j="$job" 'j !~ /_/ || $1 == j')"
      # A dependency that can never be satisfied is final even though the job is still pending.
      if grep -q 'Reason=DependencyNeverSatisfied' <<<"$records"; then queued=""; fi
    fi
    if [ -n "$records" ] && [ -z "$queued" ] && ! _wj_active <<<"$records"; then break; fi
    if [ $SECONDS -ge $deadline ]; then
      echo "wait_job: timeout after ${timeout}s waiting for job $job; current states:" >&2
      _wj_report <<<"$records" >&2
      return 2
    fi
    sleep "$poll"
  done
  _wj_report <<<"$records"
}

# One line per record: ID STATE EXITCODE REASON, from scontrol (return 3 if the job is unknown, 1 on other errors).
_wj_records() {
  local out
  if ! out="$(scontrol show job -o "$1" 2>&1)"; then
    grep -qi 'invalid job id' <<<"$out" && return 3
    return 1
  fi
  awk '{
    id=""; aj=""; at=""; st=""; ec=""; rs="";
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=");
      if (kv[1] == "JobId") id = kv[2]; else if (kv[1] == "ArrayJobId") aj = kv[2];
      else if (kv[1] == "ArrayTaskId") at = kv[2]; else if (kv[1] == "JobState") st = kv[2];
      else if (kv[1] == "ExitCode") ec = kv[2]; else if (kv[1] == "Reason") rs = kv[2];
    }
    if (id == "") next;
    name = (aj != "" && at != "") ? aj "_" at : id;
    print name, st, "ExitCode=" ec, "Reason=" rs
  }' <<<"$out" | sort -t_ -k1,1n -k2,2n
}

# The same lines from the job-completion log, for a job the controller no longer lists.
_wj_jobcomp() {
  local log
  log="$(scontrol show config 2>/dev/null | awk -F' = ' '/^JobCompLoc/{print $2}')"
  [ -n "$log" ] && [ -f "$log" ] || return 0
  awk -v j="$1" '{
    id=""; aj=""; at=""; st=""; ec="";
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=");
      if (kv[1] == "JobId") id = kv[2]; else if (kv[1] == "ArrayJobId") aj = kv[2];
      else if (kv[1] == "ArrayTaskId") at = kv[2]; else if (kv[1] == "JobState") st = kv[2];
      else if (kv[1] == "ExitCode") ec = kv[2];
    }
    name = (aj != "" && at != "") ? aj "_" at : id;
    if (id == j || aj == j || name == j) last[name] = name " " st " ExitCode=" ec " Reason=jobcomp";
  } END { for (n in last) print last[n] }' "$log" | sort -t_ -k1,1n -k2,2n
}

# True if any record is not in a final state.
_wj_active() {
  awk '$2 !~ /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE|REVOKED|SPECIAL_EXIT)$/ \
       && $4 != "Reason=DependencyNeverSatisfied" { found = 1 } END { exit !found }'
}

# Print the records and a summary; status 0 only if all COMPLETED.
_wj_report() {
  awk '
    NF { n++; printf "%s %s %s", $1, $2, $3; if ($2 != "COMPLETED") { bad++; if ($4 != "Reason=None" && $4 != "Reason=jobcomp") printf " %s", $4 }; print "" }
    END { printf "wait_job: %d of %d COMPLETED%s\n", n - bad, n, (bad ? ", " bad " not" : ""); exit (n == 0 || bad) ? 1 : 0 }'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  export PATH="$PATH:/usr/sbin:/sbin"
  wait_job "$@"
  exit $?
fi
