#!/usr/bin/env bash
# local_slurm.sh: a single-node SLURM on this machine, for the test suite and for demos.
#
# Usage:
#   cluster/local_slurm.sh start  [STATE_DIR]   install (apt) if needed, configure and start SLURM;
#                                               prints one line, SLURM_CONF=STATE_DIR/slurm.conf
#   cluster/local_slurm.sh stop   [STATE_DIR]   cancel jobs, stop the daemons started from STATE_DIR
#   cluster/local_slurm.sh status [STATE_DIR]   print `sinfo`; exit 1 if slurmctld or slurmd is down
#
# STATE_DIR defaults to $PWD/.slurm. It holds slurm.conf and every state, spool, pid and log file,
# and is readable by root only. Then use the cluster with, e.g.
#   export SLURM_CONF=STATE_DIR/slurm.conf; sbatch --wrap hostname; squeue; sinfo
# Accounting is off: use squeue and scontrol, not sacct.
#
# Needs root (slurmd runs jobs as their submitting user; apt and munged need root) and Debian's
# packages slurmctld, slurmd, slurm-client and munge, which `start` installs with apt-get when they
# are missing. The daemons talk over 127.0.0.1 only. `start` is idempotent: it reuses daemons
# already started from the same STATE_DIR, and restarts them if the generated slurm.conf changed.
# It starts munged if no munged answers, and `stop` stops that munged again (once no slurmctld or
# slurmd is left on the machine); a munged that was already running is left alone.
#
# Environment:
#   EMUSTUDY_SLURMCTLD_PORT  slurmctld's port (default 16817; SLURM's own default 6817 is left to a
#                            system SLURM)
#   EMUSTUDY_SLURMD_PORT     slurmd's port (default 16818)
#   EMUSTUDY_SLURM_TIMEOUT   seconds `start` waits for the node to become idle (default 60)
#
# Exit status: 0 ok; 1 usage error, or `status` found it not running; 2 not root; 3 the packages
# are missing and cannot be installed (no apt-get, or it failed); 4 the daemons did not come up
# (the tail of their logs goes to stderr); 5 a port is already taken by another program.
set -euo pipefail

# Root's PATH normally has the sbin folders, `sudo -E` or a minimal environment may not.
export PATH="${PATH:-/usr/bin:/bin}:/usr/sbin:/usr/bin:/sbin:/bin"

CTLD_PORT="${EMUSTUDY_SLURMCTLD_PORT:-16817}"
SLURMD_PORT="${EMUSTUDY_SLURMD_PORT:-16818}"
START_TIMEOUT="${EMUSTUDY_SLURM_TIMEOUT:-60}"
PACKAGES=(slurmctld slurmd slurm-client munge)
PROG="local_slurm.sh"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    local status=$1
    shift
    printf '%s: %s\n' "$PROG" "$*" >&2
    exit "$status"
}

# usage STATUS: print this file's header comment (stdout for --help, else stderr) and exit.
usage() {
    local text
    text=$(sed -n '2,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "$0")
    if (($1 == 0)); then printf '%s\n' "$text"; else printf '%s\n' "$text" >&2; fi
    exit "$1"
}

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        die 2 "local SLURM needs root: slurmd runs jobs as their users, and apt-get and munged" \
            "need root too (running as $(id -un 2>/dev/null || id -u)); run it as root, e.g. sudo $0 $1"
    fi
}

# --- paths -------------------------------------------------------------------------------------

set_paths() {
    local dir="${1:-$PWD/.slurm}"
    [[ $dir == /* ]] || dir="$PWD/$dir"
    if [[ $dir =~ [[:space:]] ]]; then
        die 1 "STATE_DIR must not contain whitespace (slurm.conf cannot quote paths): '$dir'"
    fi
    STATE_DIR="${dir%/}"
    CONF="$STATE_DIR/slurm.conf"
    CTLD_PIDFILE="$STATE_DIR/slurmctld.pid"
    SLURMD_PIDFILE="$STATE_DIR/slurmd.pid"
    CTLD_LOG="$STATE_DIR/slurmctld.log"
    SLURMD_LOG="$STATE_DIR/slurmd.log"
    MUNGE_MARKER="$STATE_DIR/munged.started-by-local-slurm"
}

node_name() {
    local name
    name=$(hostname -s 2>/dev/null || true)
    [[ -n $name ]] || name=$(hostname)
    printf '%s\n' "$name"
}

# --- processes ---------------------------------------------------------------------------------

# our_pid DAEMON PIDFILE: print the pid in PIDFILE if that process is DAEMON started with our CONF.
our_pid() {
    local daemon=$1 pidfile=$2 pid cmdline
    [[ -r $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$daemon "*"-f $CONF"* ]] || return 1
    printf '%s\n' "$pid"
}

# stop_pid NAME PID: SIGTERM, wait up to 20 s, then SIGKILL.
stop_pid() {
    local name=$1 pid=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "$name (pid $pid) ignored SIGTERM for 20 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

stop_daemons() {
    local pid
    if pid=$(our_pid slurmd "$SLURMD_PIDFILE"); then
        log "stopping slurmd (pid $pid)"
        stop_pid slurmd "$pid"
    fi
    if pid=$(our_pid slurmctld "$CTLD_PIDFILE"); then
        log "stopping slurmctld (pid $pid)"
        stop_pid slurmctld "$pid"
    fi
    rm -f "$SLURMD_PIDFILE" "$CTLD_PIDFILE"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_holder PORT: the command line of the process listening on PORT, if `ss` can tell.
port_holder() {
    local pid
    pid=$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1) || return 0
    [[ -n $pid ]] || return 0
    tr '\0' ' ' <"/proc/${pid#pid=}/cmdline" 2>/dev/null || true
}

munge_works() { timeout 10 munge -n 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1; }

sinfo_states() { SLURM_CONF="$CONF" timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null; }

# node_ready: true once sinfo shows the node usable and, if we started slurmd at SLURMD_STARTED_AT
# (epoch seconds), that slurmd has registered. Sets NODE_STATE. (slurmctld restores the node's
# last state from its state files, so right after a restart "idle" alone proves nothing.)
node_ready() {
    local start
    NODE_STATE=$(sinfo_states) || NODE_STATE=""
    [[ $NODE_STATE =~ ^(idle|mixed|allocated|completing)$ ]] || return 1
    ((SLURMD_STARTED_AT == 0)) && return 0
    start=$(SLURM_CONF="$CONF" timeout 10 scontrol show node "$NODE" 2>/dev/null |
        grep -o 'SlurmdStartTime=[^ ]*') || return 1
    start=$(date -d "${start#*=}" +%s 2>/dev/null) || return 1
    ((start >= SLURMD_STARTED_AT))
}

show_logs() {
    local f
    for f in "$CTLD_LOG" "$SLURMD_LOG"; do
        [[ -r $f ]] || continue
        printf '%s: --- last lines of %s ---\n' "$PROG" "$f" >&2
        tail -n 25 "$f" >&2
    done
}

# --- start -------------------------------------------------------------------------------------

install_packages() {
    local missing=() cmd
    for cmd in slurmctld slurmd sinfo munged; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null 2>&1 ||
        die 3 "SLURM is not installed (missing: ${missing[*]}) and apt-get is not available;" \
            "install ${PACKAGES[*]} (Slurm >= 22.05) yourself"
    log "installing ${PACKAGES[*]} with apt-get (missing: ${missing[*]})"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}"; } >&2; then
        die 3 "apt-get could not install ${PACKAGES[*]} (see its output above)"
    fi
    for cmd in slurmctld slurmd sinfo munged; do
        command -v "$cmd" >/dev/null 2>&1 || die 3 "$cmd is still missing after apt-get install"
    done
}

start_munge() {
    if munge_works; then
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        install -d -o munge -g munge -m 0700 /etc/munge
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key >&2
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged >&2 || die 4 "munged failed to start"
    local i
    for ((i = 0; i < 50; i++)); do
        if munge_works; then
            # Remember which munged we started, so that `stop` stops that one and no other.
            tr -dc '0-9' </run/munge/munged.pid >"$MUNGE_MARKER" 2>/dev/null || : >"$MUNGE_MARKER"
            return 0
        fi
        sleep 0.2
    done
    die 4 "munged started but 'munge -n | unmunge' still fails"
}

write_conf() {
    local cpus mem_total mem margin
    cpus=$(getconf _NPROCESSORS_ONLN)  # nproc would obey OMP_NUM_THREADS, which Dask sets
    mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    margin=$((mem_total / 10 > 512 ? mem_total / 10 : 512))
    mem=$((mem_total - margin > 256 ? mem_total - margin : 256))
    cat <<EOF
# Written by cluster/local_slurm.sh for node $NODE; rewritten on every start.
ClusterName=emustudy
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# Bind slurmctld, slurmd and srun to the addresses above (127.0.0.1) instead of every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Trust this file's CPUs and RealMemory instead of draining the node when the hardware differs.
SlurmdParameters=config_overrides
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
InactiveLimit=0
KillWait=5
Waittime=0
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$CTLD_PIDFILE
SlurmdPidFile=$SLURMD_PIDFILE
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$((mem / cpus))
EOF
}

cmd_start() {
    require_root start
    set_paths "${1:-}"
    local setting
    for setting in EMUSTUDY_SLURMCTLD_PORT=$CTLD_PORT EMUSTUDY_SLURMD_PORT=$SLURMD_PORT \
        EMUSTUDY_SLURM_TIMEOUT=$START_TIMEOUT; do
        [[ ${setting#*=} =~ ^[1-9][0-9]{0,5}$ ]] ||
            die 1 "${setting%%=*} must be a positive integer, got '${setting#*=}'"
    done
    ((CTLD_PORT != SLURMD_PORT && CTLD_PORT < 65536 && SLURMD_PORT < 65536)) ||
        die 1 "the slurmctld and slurmd ports must be two different ports below 65536"
    NODE=$(node_name)
    install_packages
    install -d -m 0700 "$STATE_DIR"
    install -d -m 0700 "$STATE_DIR/state" "$STATE_DIR/spool"

    local ctld_pid="" slurmd_pid="" new_conf
    SLURMD_STARTED_AT=0 NODE_STATE=""
    ctld_pid=$(our_pid slurmctld "$CTLD_PIDFILE") || ctld_pid=""
    slurmd_pid=$(our_pid slurmd "$SLURMD_PIDFILE") || slurmd_pid=""

    new_conf=$(write_conf)
    if [[ ! -f $CONF ]] || [[ $(<"$CONF") != "$new_conf" ]]; then
        if [[ -n $ctld_pid || -n $slurmd_pid ]]; then
            log "slurm.conf changed: restarting the daemons of $STATE_DIR"
            stop_daemons
            ctld_pid="" slurmd_pid=""
        fi
        printf '%s\n' "$new_conf" >"$CONF.tmp"
        chmod 0600 "$CONF.tmp"
        mv -f "$CONF.tmp" "$CONF"
    fi

    local port holder hint
    for port in $([[ -z $ctld_pid ]] && echo "$CTLD_PORT") $([[ -z $slurmd_pid ]] && echo "$SLURMD_PORT"); do
        port_in_use "$port" || continue
        holder=$(port_holder "$port" | tr '\n' ' ')
        holder=${holder%"${holder##*[! ]}"}
        [[ -z $holder ]] || holder="'$holder' "
        hint="stop it"
        if [[ $holder =~ ^\'[^\ ]*slurm(ctld|d)\ .*-f\ ([^\ ]+)/slurm\.conf ]]; then
            hint="it is another local SLURM: stop it with '$0 stop ${BASH_REMATCH[2]}'"
        fi
        die 5 "port $port on 127.0.0.1 is taken by $holder(see 'ss -ltnp'); $hint," \
            "or choose free ports with EMUSTUDY_SLURMCTLD_PORT and EMUSTUDY_SLURMD_PORT"
    done

    start_munge

    if [[ -n $ctld_pid ]]; then
        log "reusing slurmctld (pid $ctld_pid) of $STATE_DIR"
    else
        log "starting slurmctld"
        slurmctld -f "$CONF" >&2 || { show_logs; die 4 "slurmctld failed to start"; }
    fi
    if [[ -n $slurmd_pid ]]; then
        log "reusing slurmd (pid $slurmd_pid) of $STATE_DIR"
    else
        log "starting slurmd"
        SLURMD_STARTED_AT=$(date +%s)
        slurmd -f "$CONF" -N "$NODE" >&2 || { show_logs; die 4 "slurmd failed to start"; }
    fi

    local deadline=$((SECONDS + START_TIMEOUT)) resumed=0 reason
    while ((SECONDS < deadline)); do
        if node_ready; then
            log "node $NODE is $NODE_STATE"
            printf 'SLURM_CONF=%s\n' "$CONF"
            return 0
        fi
        # A drain (e.g. after a job that could not be killed) survives restarts in the state
        # files; this cluster is disposable, so put the node back in service once.
        if ((resumed == 0)) && [[ $NODE_STATE =~ ^(drained|draining|drain|down)$ ]]; then
            resumed=1
            reason=$(SLURM_CONF="$CONF" timeout 10 sinfo -h -n "$NODE" -o %E 2>/dev/null) || reason=""
            log "node $NODE is $NODE_STATE (reason: ${reason:-none}); resuming it"
            SLURM_CONF="$CONF" timeout 10 scontrol update NodeName="$NODE" State=RESUME >&2 || true
        fi
        sleep 0.5
    done
    show_logs
    die 4 "node $NODE is not ready after ${START_TIMEOUT} s (sinfo says: '${NODE_STATE:-nothing}');" \
        "stop it with: $0 stop $STATE_DIR"
}

# --- stop / status -----------------------------------------------------------------------------

cmd_stop() {
    require_root stop
    set_paths "${1:-}"
    if [[ -f $CONF ]] && our_pid slurmctld "$CTLD_PIDFILE" >/dev/null; then
        local jobs i
        jobs=$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %i 2>/dev/null) || jobs=""
        if [[ -n $jobs ]]; then
            log "cancelling jobs: ${jobs//$'\n'/ }"
            # shellcheck disable=SC2086  # one argument per job id
            SLURM_CONF="$CONF" timeout 10 scancel $jobs >&2 || true
            for ((i = 0; i < 60; i++)); do
                jobs=$(SLURM_CONF="$CONF" timeout 10 squeue -h -t all -o %T 2>/dev/null |
                    grep -Ev '^(CANCELLED|COMPLETED|FAILED|TIMEOUT|PREEMPTED|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)$' ||
                    true)
                [[ -z $jobs ]] && break
                sleep 0.5
            done
        fi
    fi
    stop_daemons
    if [[ -e $MUNGE_MARKER ]]; then
        local pid
        pid=$(tr -dc '0-9' <"$MUNGE_MARKER") || pid=""
        if [[ -z $pid ]] || [[ $(cat "/proc/$pid/comm" 2>/dev/null) != munged ]]; then
            : # already gone
        elif pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
            log "leaving munged (pid $pid) running: another slurmctld or slurmd still uses it"
        else
            log "stopping munged (pid $pid)"
            stop_pid munged "$pid"
        fi
        rm -f "$MUNGE_MARKER"
    fi
    return 0
}

cmd_status() {
    set_paths "${1:-}"
    if [[ ! -r $CONF ]] || ! our_pid slurmctld "$CTLD_PIDFILE" >/dev/null; then
        echo "local SLURM is not running (STATE_DIR $STATE_DIR)"
        return 1
    fi
    echo "SLURM_CONF=$CONF"
    SLURM_CONF="$CONF" timeout 10 sinfo || { echo "sinfo failed"; return 1; }
    if ! our_pid slurmd "$SLURMD_PIDFILE" >/dev/null; then
        echo "slurmd is not running: jobs cannot start; run '$0 start $STATE_DIR' to restart it"
        return 1
    fi
}

main() {
    local command=${1:-}
    shift || true
    case $command in
        -h | --help | help) usage 0 ;;
    esac
    (($# <= 1)) || usage 1
    case $command in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        *) usage 1 ;;
    esac
}

main "$@"
