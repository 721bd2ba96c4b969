/**
 * The vif-xennet the toolstack runs: a bash script (Xen's own hooks are shell scripts too) that
 * hands the call to the xennet daemon when one runs, and otherwise runs it in Node. Starting Node
 * costs more than Xen's whole vif-bridge, so the client uses bash builtins and one mkfifo.
 *
 * The handshake never runs a call twice: the daemon claims a request by renaming its file, and
 * the client takes one back the same way (mv) before it runs the call itself. A daemon that is
 * not running, does not accept within a second, or dies mid-call (its heartbeats stop and its pid
 * is gone) makes the client run the call in-process, which is safe: calls are idempotent.
 *
 * No daemon at all: the client starts one first (a boot storm of 200 hooks each starting Node
 * gets 72 of them connected; one daemon serves all 200). One client starts it, under a lock; the
 * others of a storm wait on that lock (in bash, costing nothing) and then hand their calls to it.
 * Under systemd with xennet.service installed it is `systemctl start` (a masked unit starts
 * nothing); otherwise the daemon is started detached, under a bash loop that runs it again when
 * it dies (no systemd to do it). The call runs in-process when
 * `<run dir>/autostart.off` exists (the operator's switch; the package sets it while it upgrades),
 * or when no daemon is ready within 15 s (then, for 30 s, no other client tries again).
 */
import { DAEMON_NODE_FLAGS, DAEMON_REFUSED_EXIT, HOST_VARIABLES } from '../daemon/paths.js';

/** How long a client waits for a daemon it started to be ready, and for another's start (s). */
export const AUTOSTART_WAIT_S = 15;
export const AUTOSTART_LOCK_WAIT_S = 17;
/** A hook-started daemon that dies within this many seconds of its start is not run again after the third time. */
export const SUPERVISOR_QUICK_S = 10;

/**
 * The script; `entry` is the Node entry for in-process calls and `cli` the CLI that runs the
 * daemon (absolute), or both derived from the script's own path.
 */
export function vifClientScript(options: { entry?: string; cli?: string; node?: string } = {}): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const here = `"$(dirname -- "$(readlink -f -- "\${BASH_SOURCE[0]}")")`;
  const entry = options.entry ? q(options.entry) : `${here}/../dist/bundle/vif-entry.mjs"`;
  const cli = options.cli ? q(options.cli) : `${here}/../dist/src/cli/main.js"`;
  const node = options.node ? q(options.node) : 'node';
  return `#!/bin/bash
# vif-xennet: the Xen vif-script of xennet (xl: script=vif-xennet; xend: (vif-script vif-xennet)).
# Written by xennet${options.entry ? ' install-hooks' : ''}; see docs/vif-hook.md. It hands the call to the
# xennet daemon when one runs (a few milliseconds), and otherwise runs it in Node.
start=\${EPOCHREALTIME/,/.}
run=\${XENNET_RUN_DIR:-/run/xennet}
args=("$@")
req=
pid=

in_process() {
  { exec 3<&-; } 2>/dev/null
  if [[ ! -f ${entry} ]]; then
    printf 'vif-xennet: error: xennet is not installed (%s is missing): the guest cannot be firewalled; reinstall xennet, or point the toolstack back at its own vif-script (xl.conf: vif.default.script)\\n' ${entry} >&2
    exit 1
  fi
  export XENNET_HOOK_STARTED=$start
  [[ -n $req ]] && rm -f -- "$req.self" 2>/dev/null
  exec ${node} -- ${entry} "\${args[@]}"
}

# Take the call back before the daemon has claimed it (rename: exactly one of us gets it).
take_back() {
  if mv -T -- "$req" "$req.self" 2>/dev/null; then in_process; fi
}

# Whether a daemon serves: its pid file names a live daemon (read as a regular file, not through
# a link, its first bytes only: a FIFO there would hang the hook past the toolstack's timeout; a
# pid that went to another program after its daemon died is no daemon), and its FIFO is there.
serving() {
  local -a argv=()
  pid=
  if [[ -f $run/daemon.pid && ! -L $run/daemon.pid ]]; then { read -r -n 16 pid < "$run/daemon.pid"; } 2>/dev/null; fi
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && [[ -p $run/daemon.fifo ]] || return 1
  { mapfile -d '' -t argv < "/proc/$pid/cmdline"; } 2>/dev/null
  [[ " \${argv[*]} " == *' daemon '* ]]
}

# A plain file of the run directory (not a link, not a FIFO), or none yet.
plain_or_absent() {
  [[ ! -L $1 ]] && { [[ ! -e $1 ]] || [[ -f $1 ]]; }
}

# What runs a daemon a hook started (no systemd to restart it): runs it again a second after it
# died (killed, or an exception), not after a stop it was asked for (SIGTERM: exit 0), not when
# it refused to start (exit ${DAEMON_REFUSED_EXIT}: another daemon serves, a setting it refuses), not when
# autostart.off exists, and not after three deaths in a row within 10 s of their start. A restart
# takes autostart.lock and looks at autostart.off under it, and holds it until the new daemon
# serves or dies, as a hook's start does: uninstall and the package's prerm set autostart.off and
# then take the lock once, so the daemon they stop is the last one. SIGTERM to the supervisor
# stops the daemon (and then the supervisor); SIGHUP is ignored. Arguments: node, the CLI, the
# run directory.
supervise='quick=0 first=1 stop=0 child=
say() {
  local now
  TZ=UTC0 printf -v now "%(%Y-%m-%dT%H:%M:%S)TZ" -1
  printf "%s xennet-daemon-supervisor: %s\\n" "$now" "$1" >&2
  # In the background: a syslog that does not answer must not hold up the restart.
  [[ \${XENNET_SYSLOG-} != 0 ]] && { logger -t xennet-daemon -p "daemon.$2" -- "$1" > /dev/null 2>&1 & }
}
how() { if (( $1 > 128 )); then echo "killed by signal $(( $1 - 128 ))"; else echo "exit code $1"; fi; }
trap "" HUP
term() { stop=1; [[ -n $child ]] && kill -TERM "$child" 2>/dev/null; }
trap term TERM
while :; do
  if (( !first )); then
    { exec 5>> "$3/autostart.lock"; } 2>/dev/null && flock -w ${AUTOSTART_LOCK_WAIT_S} 5 || exit 1
    [[ -e $3/autostart.off ]] || (( stop )) && exit 0
  fi
  started=$SECONDS
  "$1" ${DAEMON_NODE_FLAGS.join(' ')} -- "$2" daemon 5>&- &
  child=$!
  if (( !first )); then
    pid=
    while kill -0 "$child" 2>/dev/null; do
      { read -r -n 16 pid < "$3/daemon.pid"; } 2>/dev/null
      [[ $pid == "$child" && -p $3/daemon.fifo ]] && break
      sleep 0.1
    done
    exec 5>&-
  fi
  first=0
  wait "$child" 2>/dev/null
  rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child" 2>/dev/null; rc=$?; done
  (( stop || rc == 0 || rc == ${DAEMON_REFUSED_EXIT} )) && exit "$(( rc == ${DAEMON_REFUSED_EXIT} ? rc : 0 ))"
  [[ -e $3/autostart.off ]] && exit 0
  if (( SECONDS - started < ${SUPERVISOR_QUICK_S} )); then
    if (( ++quick >= 3 )); then
      say "the daemon (pid $child) ended ($(how "$rc")), the third time in a row within ${SUPERVISOR_QUICK_S} s of its start: not running it again (the next hook that finds no daemon starts one; see the daemon log above)" err
      exit "$rc"
    fi
  else
    quick=0
  fi
  say "the daemon (pid $child) ended ($(how "$rc")); running it again" warning
  sleep 1
done'

# No daemon serves: start one, or wait for the client that starts one. Succeeds when one serves.
autostart() {
  local lock=$run/autostart.lock now failed= child= deadline log=/dev/null where fd
  [[ -e $run/autostart.off ]] && return 1
  mkdir -p -m 0700 -- "$run" 2>/dev/null
  # The daemon's own directory only (it refuses any other: files written there could be links
  # someone else put there), and a lock that is a plain file (opening a FIFO would hang).
  if ! { [[ -d $run && ! -L $run && -O $run ]] && [[ $(stat -c %a -- "$run" 2>/dev/null) == 700 ]] && plain_or_absent "$lock"; }; then
    printf 'vif-xennet: warning: %s is not the daemon'"'"'s own directory (a directory of mode 0700 owned by root, its autostart.lock a plain file): no daemon started; running this call in-process\\n' "$run" >&2
    return 1
  fi
  { exec 5>> "$lock"; } 2>/dev/null || return 1
  flock -w ${AUTOSTART_LOCK_WAIT_S} 5 2>/dev/null || { exec 5>&-; return 1; }
  if serving; then exec 5>&-; return 0; fi
  printf -v now '%(%s)T' -1
  if [[ -f $run/autostart.failed && ! -L $run/autostart.failed ]]; then { read -r -n 16 failed < "$run/autostart.failed"; } 2>/dev/null; fi
  if [[ -e $run/autostart.off ]] || { [[ $failed =~ ^[0-9]+$ ]] && (( now - failed < 30 )); }; then exec 5>&-; return 1; fi
  deadline=$(( now + ${AUTOSTART_WAIT_S} ))
  if [[ -d /run/systemd/system && $run == /run/xennet ]] && [[ -e /etc/systemd/system/xennet.service || -e /run/systemd/system/xennet.service || -e /lib/systemd/system/xennet.service || -e /usr/lib/systemd/system/xennet.service ]]; then
    # systemd's daemon, or none: a masked or failed unit is the operator's (or systemd's) word.
    where='journalctl -u xennet'
    if ! timeout ${AUTOSTART_WAIT_S - 3} systemctl start --quiet xennet.service < /dev/null > /dev/null 2>&1 5>&-; then deadline=0; fi
  else
    # Its own session, in /, with the host's variables only (a setting of this one call, such as
    # XENNET_FIREWALL=off, is not the daemon's), and none of the toolstack's descriptors: a
    # wrapper waiting for EOF on one, or holding a lock on one, would wait for the daemon. Its
    # log is syslog (with XENNET_SYSLOG=0, a file in the run directory).
    local cli=${cli}
    local -a env=("PATH=\${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}")
    for v in ${[...HOST_VARIABLES, 'XENNET_SYSLOG'].join(' ')}; do [[ -v $v ]] && env+=("$v=\${!v}"); done
    where=syslog
    if [[ \${XENNET_SYSLOG-} == 0 ]]; then
      where=$run/daemon.log
      plain_or_absent "$where" && log=$where
    fi
    (
      for fd in /proc/$BASHPID/fd/*; do
        fd=\${fd##*/}
        (( fd > 2 )) && exec {fd}>&-
      done
      cd / && exec env -i "\${env[@]}" setsid /bin/bash -c "$supervise" xennet-daemon-supervisor ${node} "$cli" "$run" < /dev/null > /dev/null 2>> "$log"
    ) 5>&- 2>/dev/null &
    child=$!
  fi
  exec 6<> <(:)
  while printf -v now '%(%s)T' -1; (( now < deadline )); do
    serving && break
    [[ -n $child ]] && ! kill -0 "$child" 2>/dev/null && break
    read -r -t 0.05 -u 6
  done
  exec 6<&-
  if serving; then
    rm -f -- "$run/autostart.failed"
    exec 5>&-
    return 0
  fi
  # A daemon that did not serve in time is not left starting beside the next attempt (nor its
  # supervisor: the session's process group).
  [[ -n $child ]] && kill -KILL -- -"$child" "$child" 2>/dev/null
  printf 'vif-xennet: warning: could not start the xennet daemon (its log: %s); running this call in-process\\n' "$where" >&2
  printf -v now '%(%s)T' -1
  { printf '%s\\n' "$now" > "$run/autostart.failed.$$" && mv -f -T -- "$run/autostart.failed.$$" "$run/autostart.failed"; } 2>/dev/null
  exec 5>&-
  return 1
}

# Only a toolstack's call (online, offline) starts a daemon: anything else (add and remove are
# nothing for a vif, a wrong command is refused) is answered in-process.
case \${1-} in
  online|offline) serving || autostart || in_process ;;
  *) serving || in_process ;;
esac
req=$run/req/$$.$RANDOM$RANDOM
# The request: argv and the toolstack's environment, NUL-separated. Its status is that of the
# writes only (an unset variable is not a failure).
request() {
  printf 'xennet-hook 1\\0%s\\0%s\\0' "$start" "$#" || return 1
  if (( $# )); then printf '%s\\0' "$@" || return 1; fi
  for v in vif XENBUS_PATH XENBUS_TYPE XENBUS_BASE_PATH INTERFACE script netdev bridge ip XENNET_FIREWALL XENNET_TIMING XENNET_SYSLOG XENNET_STATE_DIR XENNET_RULES XENSTORED_PATH XENSTORED_RUNDIR XENNET_HOTPLUG_LOCK_DIR XENNET_IPTABLES XENNET_RUN_DIR; do
    if [[ -v $v ]]; then printf '%s=%s\\0' "$v" "\${!v}" || return 1; fi
  done
}
set -C
if ! request "$@" > "$req" 2>/dev/null; then
  req=
  in_process
fi
set +C
# The reply pipe: a pipe this shell holds open both ways as fd 3 (the daemon writes to it through
# /proc/<pid>/fd/3); no mkfifo, no file to clean up.
exec 3<> <(:) || take_back
[[ -p $run/daemon.fifo ]] || take_back
# In the background: a daemon hung long enough leaves its FIFO full, and the write would block.
{ printf '%s\\n' "$req" >&4; } 4<> "$run/daemon.fifo" 2>/dev/null &
writer=$!
line=
if ! IFS= read -r -t 1 -u 3 line; then
  kill "$writer" 2>/dev/null
  take_back
fi
[[ $line == fallback ]] && take_back
deadline=$(( \${start%.*} + 36 ))
while :; do
  if IFS= read -r -t 3 -u 3 line; then
    case $line in
      .|accepted) ;;
      'exit '[0-9]*) exit "\${line#exit }" ;;
      *) printf '%s\\n' "$line" >&2 ;;
    esac
  else
    # Silent for 3 s: a daemon that is gone runs nothing more, so the call can run here. One that
    # is there but hung still has the call: running it here too would race it; give up instead,
    # before libxl's 40 s.
    kill -0 "$pid" 2>/dev/null || in_process
    now=\${EPOCHREALTIME/,/.}
    if (( \${now%.*} >= deadline )); then
      printf 'vif-xennet: the xennet daemon (pid %s) took this call and has not finished it; giving up (not running it twice)\\n' "$pid" >&2
      exit 1
    fi
  fi
done
`;
}
