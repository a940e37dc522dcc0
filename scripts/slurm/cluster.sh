#!/usr/bin/env bash
# A single-node Slurm cluster on loopback for tests and CI.
#
#   scripts/slurm/cluster.sh start  [--dir DIR]   install slurm-wlm + munge if absent, start munged, slurmctld, slurmd
#   scripts/slurm/cluster.sh stop   [--dir DIR]   stop exactly the daemons recorded in DIR (by PID) and wait for them
#   scripts/slurm/cluster.sh status [--dir DIR]   say whether each daemon is running (exit 0 only if all three are)
#   scripts/slurm/cluster.sh env    [--dir DIR]   print the `export SLURM_CONF=...` line
#
# DIR (the state folder) defaults to $SINGLORA_SLURM_DIR, else ${TMPDIR:-/tmp}/singlora-slurm. Everything lives in it:
#   slurm.conf, munge/ (key, socket, seed, pid, log), spool/ctld, spool/d, run/ (pid files), log/, jobs/.
# Nothing is written to /etc/slurm or /etc/munge. The only system paths touched are those of `apt-get install`
# itself (the packages; munge's postinst also creates /etc/munge/munge.key and the `munge` user, which munged
# needs to run as). Ports default to 16817 (slurmctld) and 16818 (slurmd), not Slurm's 6817/6818, so a system
# Slurm that a package postinst may have started elsewhere cannot clash; override with SINGLORA_SLURM_CTLD_PORT /
# SINGLORA_SLURM_SLURMD_PORT. All addresses are 127.0.0.1.
#
# Environment knobs: SINGLORA_SLURM_START_TIMEOUT (s, default 90), SINGLORA_SLURM_STOP_TIMEOUT (s, default 30),
# SINGLORA_SLURM_NO_INSTALL=1 (fail instead of running apt-get).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd="${1:-}"; [ -n "$cmd" ] || usage; shift
dir="${SINGLORA_SLURM_DIR:-${TMPDIR:-/tmp}/singlora-slurm}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || usage; dir="$2"; shift 2 ;;
    --dir=*) dir="${1#--dir=}"; shift ;;
    *) usage ;;
  esac
done
STATE="$(realpath -m -- "$dir")"
CONF="$STATE/slurm.conf"
MUNGE_DIR="$STATE/munge"
MUNGE_KEY="$MUNGE_DIR/munge.key"
MUNGE_SOCK="$MUNGE_DIR/munged.sock"
MUNGE_PID="$MUNGE_DIR/munged.pid"
MUNGE_LOG="$MUNGE_DIR/munged.log"
CTLD_PID="$STATE/run/slurmctld.pid"
SLURMD_PID="$STATE/run/slurmd.pid"
CTLD_PORT="${SINGLORA_SLURM_CTLD_PORT:-16817}"
SLURMD_PORT="${SINGLORA_SLURM_SLURMD_PORT:-16818}"
START_TIMEOUT="${SINGLORA_SLURM_START_TIMEOUT:-90}"
STOP_TIMEOUT="${SINGLORA_SLURM_STOP_TIMEOUT:-30}"
PACKAGES=(slurm-wlm munge)

now_ms() { date +%s%3N; }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
say() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes, identified by PID file + command line
# A PID counts as ours only if it is alive, not a zombie, and its command line names our state folder (our config
# or our munge socket), so a stale PID file whose number was reused by another process is never "running".
pid_of() { # FILE NEEDLE -> prints the PID if that process is alive and its cmdline contains NEEDLE
  local file="$1" needle="$2" pid
  [ -s "$file" ] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [ -n "$pid" ] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$needle" || return 1
  echo "$pid"
}
alive() { # PID: alive and not a zombie (PID 1 here may not reap daemons' zombies)
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
munged_pid() { pid_of "$MUNGE_PID" "$MUNGE_SOCK"; }
ctld_pid() { pid_of "$CTLD_PID" "$CONF"; }
slurmd_pid() { pid_of "$SLURMD_PID" "$CONF"; }

stop_pid() { # NAME PID: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL and wait again
  local name="$1" pid="$2" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do alive "$pid" || { STOPPED+=("$pid"); say "$name (pid $pid) stopped"; return 0; }; sleep 0.1; done
  say "$name (pid $pid) did not exit within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do alive "$pid" || { STOPPED+=("$pid"); say "$name (pid $pid) killed"; return 0; }; sleep 0.1; done
  die "$name (pid $pid) is still alive after SIGKILL"
}
# The daemons are reparented to PID 1, which on these machines reaps orphans only every second or two: give the
# exited processes up to 3 s to leave the process table, so that `pgrep slurm` right after stop shows nothing (as
# zombies they hold no port, file or lock, so this is cosmetic and never fails).
STOPPED=()
reaped() { local i p left; for ((i = 0; i < 30; i++)); do left=0; for p in "${STOPPED[@]}"; do [ -e "/proc/$p" ] && left=1; done; [ $left = 0 ] && return 0; sleep 0.1; done; return 0; }

# Job steps (slurmstepd) are started by our slurmd with SLURM_CONF=$CONF in their environment; only those are ours.
our_stepds() {
  local p
  for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
    tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "SLURM_CONF=$CONF" && echo "$p"
  done
  return 0
}

# ---------------------------------------------------------------- installation
have_binaries() { local b; for b in munged munge slurmctld slurmd sbatch sinfo squeue scontrol scancel; do command -v "$b" >/dev/null || return 1; done; }
install_packages() {
  have_binaries && id munge >/dev/null 2>&1 && return 0
  [ "${SINGLORA_SLURM_NO_INSTALL:-0}" != 1 ] || die "slurm-wlm/munge are not installed and SINGLORA_SLURM_NO_INSTALL=1"
  [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are not installed and installing them needs root (run: apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and there is no apt-get to install them"
  local log="$STATE/log/apt.log" t0; t0="$(now_ms)"
  say "installing ${PACKAGES[*]} with apt-get (log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt run on the machine holds the dpkg lock: wait for it rather than fail.
  local aptopts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! apt-get "${aptopts[@]}" update >"$log" 2>&1; then
    die "apt-get update failed, cannot install ${PACKAGES[*]} (see $log: $(tail -n 1 "$log"))"
  fi
  if ! apt-get "${aptopts[@]}" install -y --no-install-recommends "${PACKAGES[@]}" >>"$log" 2>&1; then
    die "apt-get install ${PACKAGES[*]} failed (see $log: $(tail -n 1 "$log"))"
  fi
  have_binaries || die "apt-get reported success but slurm/munge binaries are missing (see $log)"
  id munge >/dev/null 2>&1 || die "package munge installed but there is no 'munge' user (see $log)"
  say "installed $(slurm_version) and munge $(dpkg-query -W -f='${Version}' munge 2>/dev/null) in $(since "$t0")s"
}
# Client commands fail without a configuration (even for --version): ask slurmd, which prints it without one.
slurm_version() { slurmd -V 2>/dev/null || echo "slurm (unknown version)"; }

# ---------------------------------------------------------------- configuration
port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

write_config() {
  local node cpus mem_kb mem_mb
  node="$(hostname -s 2>/dev/null || true)"; node="${node:-localhost}"
  cpus="$(nproc)"
  mem_kb="$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
  # slurmd marks the node INVALID when RealMemory exceeds what it measures itself; leave 2% headroom.
  mem_mb=$((mem_kb * 98 / 100 / 1024))
  NODE="$node"
  # NoInAddrAny / NoCtldInAddrAny make slurmd / slurmctld bind to the address that gethostname() resolves to
  # (not to NodeAddr / SlurmctldAddr). That is loopback-only exactly when the hostname resolves to 127.0.0.1;
  # Debian's default /etc/hosts maps it to 127.0.1.1, a container's may map it to its LAN address, and an
  # unresolvable hostname makes both daemons retry for 10 s and die. In those cases leave the binding at
  # INADDR_ANY: every address in this config is 127.0.0.1, so all traffic still stays on loopback.
  local resolved comm
  resolved="$(getent ahostsv4 "$(hostname 2>/dev/null || echo localhost)" 2>/dev/null | awk 'NR == 1 {print $1}' || true)"
  if [ "$resolved" = 127.0.0.1 ]; then
    comm="CommunicationParameters=NoInAddrAny,NoCtldInAddrAny"; BIND=127.0.0.1
  else
    comm="# CommunicationParameters=NoInAddrAny,NoCtldInAddrAny left out: hostname resolves to '${resolved:-nothing}'"; BIND=0.0.0.0
    say "note: hostname $(hostname) resolves to '${resolved:-nothing}', not 127.0.0.1: the daemons listen on all addresses (ports $CTLD_PORT, $SLURMD_PORT); all traffic still goes to 127.0.0.1"
  fi
  cat >"$CONF.tmp" <<EOF
# Generated by scripts/slurm/cluster.sh; regenerated on every start. Single node, loopback only.
ClusterName=singlora
# slurmctld only accepts to run where SlurmctldHost names this host (hostname -s); the address pins it to loopback.
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
# Bind to the hostname's address (127.0.0.1 here) instead of INADDR_ANY: NoInAddrAny for slurmd, NoCtldInAddrAny
# for slurmctld.
$comm
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: process tracking by /proc, no task affinity/containment plugin.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd, so no sacct. Final job states: scontrol (finished jobs stay MinJobAge seconds) and the
# job-completion log below (one line per finished job or array task, with JobState=).
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.log
MinJobAge=3600
# A job whose dependency can never be satisfied (afterok on a failed job) is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
MpiDefault=none
# No mail on this machine (the default /usr/bin/mail does not exist: slurmctld logs an error without this).
MailProg=/bin/true
SchedulerType=sched/backfill
# Start a job as soon as its CPUs or its dependency free up (the default batch_sched_delay=3 adds seconds per wave).
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Reject at submission a job that can never run here (more CPUs or memory than the node has) instead of leaving it
# pending forever with Reason=PartitionConfig.
EnforcePartLimits=ALL
InactiveLimit=0
KillWait=10
Waittime=0
MaxArraySize=10001
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv -f "$CONF.tmp" "$CONF"
}

make_state() {
  mkdir -p "$STATE" "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/run" "$STATE/log" "$STATE/jobs" "$MUNGE_DIR"
  chmod 755 "$STATE"
  # munged checks the permissions of its key, socket and log paths: its folder must belong to the munge user and
  # must not be group/other-writable; the key must be owned by munge with mode 0400.
  chown munge:munge "$MUNGE_DIR"; chmod 755 "$MUNGE_DIR"
  if [ ! -s "$MUNGE_KEY" ] || [ "$(stat -c %s "$MUNGE_KEY")" != 1024 ]; then
    rm -f "$MUNGE_KEY"
    (umask 077; dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none)
  fi
  chown munge:munge "$MUNGE_KEY"; chmod 400 "$MUNGE_KEY"
  runuser -u munge -- test -r "$MUNGE_KEY" 2>/dev/null \
    || die "the munge user cannot reach $MUNGE_DIR: every parent folder of $STATE must be searchable by others (o+x); use a folder under /tmp"
}

# ---------------------------------------------------------------- start
wait_for() { # SECONDS DESCRIPTION COMMAND...: poll every 0.2 s (DESCRIPTION only documents the call)
  local limit="$1" i; shift 2
  for ((i = 0; i < limit * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
fail_start() { # MESSAGE LOG: show the log's tail, stop whatever did start, exit 1
  printf 'cluster: error: %s\n' "$1" >&2
  if [ -n "${2:-}" ] && [ -f "$2" ]; then echo "---- last lines of $2" >&2; tail -n 20 "$2" >&2; fi
  stop_daemons >&2 || true
  exit 1
}
# launch LOG CMD...: run a daemon (it forks into the background itself) with stdin from /dev/null, stdout/stderr
# appended to LOG and every other inherited descriptor closed, so that it keeps neither our lock nor a pipe of
# whoever called us (a test harness or CI runner would otherwise wait for that pipe's EOF forever).
launch() {
  local log="$1"; shift
  (
    for fd in "/proc/$BASHPID/fd/"*; do fd="${fd##*/}"; [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"; done
    exec "$@" </dev/null >>"$log" 2>&1
  )
}
munge_ok() { munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK"; }
node_state() { SLURM_CONF="$CONF" sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1; }
node_idle() { case "$(node_state)" in idle|idle~|mixed|allocated) return 0 ;; *) return 1 ;; esac; }

start() {
  mkdir -p "$STATE/log"
  install_packages
  local m c d
  m="$(munged_pid || true)"; c="$(ctld_pid || true)"; d="$(slurmd_pid || true)"
  if [ -n "$m" ] && [ -n "$c" ] && [ -n "$d" ]; then
    say "already running in $STATE (munged $m, slurmctld $c, slurmd $d)"
    NODE="$(awk -F'[= ]' '/^NodeName=/{print $2}' "$CONF")"
    wait_for "$START_TIMEOUT" "node idle" node_idle || fail_start "node $NODE is $(node_state), not idle" "$STATE/log/slurmd.log"
    print_env; return 0
  fi
  if [ -n "$m$c$d" ]; then say "partial cluster in $STATE (munged '${m}', slurmctld '${c}', slurmd '${d}'); restarting it"; stop_daemons; fi
  # Whatever PID files or sockets are left belong to dead daemons (a killed run): remove them.
  rm -f "$MUNGE_PID" "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$CTLD_PID" "$SLURMD_PID"
  make_state
  write_config
  port_busy "$CTLD_PORT" && die "port $CTLD_PORT (slurmctld) is in use by another program; set SINGLORA_SLURM_CTLD_PORT"
  port_busy "$SLURMD_PORT" && die "port $SLURMD_PORT (slurmd) is in use by another program; set SINGLORA_SLURM_SLURMD_PORT"
  local t0; t0="$(now_ms)"
  : >"$MUNGE_LOG"; chown munge:munge "$MUNGE_LOG"
  # munged refuses to run as root without --force; run it as the munge user, as packaged. It daemonizes itself.
  launch "$MUNGE_LOG" runuser -u munge -- munged --key-file="$MUNGE_KEY" --socket="$MUNGE_SOCK" \
    --pid-file="$MUNGE_PID" --log-file="$MUNGE_LOG" --seed-file="$MUNGE_DIR/munged.seed" --num-threads=2 \
    || fail_start "munged did not start" "$MUNGE_LOG"
  wait_for 20 "munged" munged_pid || fail_start "munged wrote no PID file" "$MUNGE_LOG"
  wait_for 20 "munge socket" munge_ok || fail_start "munge credentials do not round-trip on $MUNGE_SOCK" "$MUNGE_LOG"
  say "munged running (pid $(munged_pid))"

  # slurmctld -c: start from a clean job state (a stale state folder from a killed run must not resurrect jobs).
  # SLURM_CONF is also exported into the daemons so their job steps carry it (that is how stop finds them).
  SLURM_CONF="$CONF" launch "$STATE/log/slurmctld.stderr" slurmctld -f "$CONF" -c \
    || fail_start "slurmctld did not start" "$STATE/log/slurmctld.log"
  wait_for 30 "slurmctld" ctld_pid || fail_start "slurmctld wrote no PID file" "$STATE/log/slurmctld.log"
  wait_for 30 "slurmctld ping" env SLURM_CONF="$CONF" scontrol ping || fail_start "slurmctld does not answer" "$STATE/log/slurmctld.log"
  say "slurmctld running (pid $(ctld_pid)) on $BIND:$CTLD_PORT"

  SLURM_CONF="$CONF" launch "$STATE/log/slurmd.stderr" slurmd -f "$CONF" -N "$NODE" \
    || fail_start "slurmd did not start" "$STATE/log/slurmd.log"
  wait_for 30 "slurmd" slurmd_pid || fail_start "slurmd wrote no PID file" "$STATE/log/slurmd.log"
  say "slurmd running (pid $(slurmd_pid)) on $BIND:$SLURMD_PORT"

  wait_for "$START_TIMEOUT" "node idle" node_idle \
    || fail_start "node $NODE is '$(node_state)' after ${START_TIMEOUT}s, not idle" "$STATE/log/slurmctld.log"
  say "node $NODE idle ($(nproc) CPUs, $(awk -F'RealMemory=' '/^NodeName=/{split($2,a," "); print a[1]}' "$CONF") MB) after $(since "$t0")s; $(slurm_version)"
  print_env
}
print_env() { echo "export SLURM_CONF=$CONF"; echo "export SLURM_CONF=$CONF" >"$STATE/env"; }

# ---------------------------------------------------------------- stop
stop_daemons() {
  local m c d p
  c="$(ctld_pid || true)"; d="$(slurmd_pid || true)"
  # Cancel this cluster's jobs first, so that no job step outlives its slurmd.
  if [ -n "$c" ]; then
    if [ -n "$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %A 2>/dev/null || true)" ]; then
      say "cancelling the jobs still queued or running"
      # shellcheck disable=SC2046 # one argument per job id
      SLURM_CONF="$CONF" timeout 10 scancel $(SLURM_CONF="$CONF" timeout 10 squeue -h -o %A 2>/dev/null) 2>/dev/null || true
      wait_for 15 "jobs cancelled" no_jobs || say "some jobs are still listed; stopping anyway"
    fi
  fi
  [ -z "$d" ] || stop_pid slurmd "$d"
  for p in $(our_stepds); do stop_pid "slurmstepd" "$p"; done
  [ -z "$c" ] || stop_pid slurmctld "$c"
  m="$(munged_pid || true)"
  [ -z "$m" ] || stop_pid munged "$m"
  rm -f "$MUNGE_PID" "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$CTLD_PID" "$SLURMD_PID"
  [ ${#STOPPED[@]} -eq 0 ] || reaped
}
no_jobs() { [ -z "$(SLURM_CONF="$CONF" timeout 5 squeue -h -o %A 2>/dev/null)" ]; }

stop() {
  if [ ! -d "$STATE" ]; then say "not running (no state folder $STATE)"; return 0; fi
  if [ -z "$(munged_pid || true)$(ctld_pid || true)$(slurmd_pid || true)$(our_stepds)" ]; then
    rm -f "$MUNGE_PID" "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$CTLD_PID" "$SLURMD_PID"
    say "not running ($STATE)"; return 0
  fi
  stop_daemons
  say "stopped ($STATE)"
}

status() {
  local m c d rc=0
  m="$(munged_pid || true)"; c="$(ctld_pid || true)"; d="$(slurmd_pid || true)"
  line munged "$m"; line slurmctld "$c"; line slurmd "$d"
  [ -n "$m" ] && [ -n "$c" ] && [ -n "$d" ] || rc=3
  if [ -n "$c" ] && [ -f "$CONF" ]; then
    NODE="$(awk -F'[= ]' '/^NodeName=/{print $2}' "$CONF")"
    printf '%-10s %s (%s)\n' node: "$NODE" "$(node_state)"
    echo "export SLURM_CONF=$CONF"
  fi
  return $rc
}
line() { if [ -n "$2" ]; then printf '%-10s running (pid %s)\n' "$1:" "$2"; else printf '%-10s stopped\n' "$1:"; fi; }

# start and stop of one state folder are serialized (tests may start the cluster from parallel threads).
lock() { mkdir -p "$STATE"; exec 9>"$STATE/.lock"; flock -w 600 9 || die "another cluster.sh holds $STATE/.lock"; }

case "$cmd" in
  start) lock; start ;;
  stop) if [ -d "$STATE" ]; then lock; fi; stop ;;
  status) status ;;
  env) [ -f "$CONF" ] || die "no cluster configured in $STATE"; echo "export SLURM_CONF=$CONF" ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
