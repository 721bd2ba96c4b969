/**
 * The vif-xennet the toolstack runs: a bash script (Xen's own hooks are shell scripts too) that
 * hands the call to the xennet daemon when one runs, and otherwise runs it in Node. Starting Node
 * costs more than Xen's whole vif-bridge, so the client uses bash builtins and one mkfifo.
 *
 * The handshake never runs a call twice: the daemon claims a request by renaming its file, and
 * the client takes one back the same way (mv) before it runs the call itself. A daemon that is
 * not running, does not accept within a second, or dies mid-call (its heartbeats stop and its pid
 * is gone) makes the client run the call in-process, which is safe: calls are idempotent.
 */

/** The script; `entry` is the Node entry for in-process calls (absolute), or derived from the script's own path. */
export function vifClientScript(options: { entry?: string; node?: string } = {}): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const entry = options.entry ? q(options.entry) : `"$(dirname -- "$(readlink -f -- "\${BASH_SOURCE[0]}")")/../dist/bundle/vif-entry.mjs"`;
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

# Only a regular file, not through a link, and its first bytes: a FIFO there would hang the hook
# past the toolstack's timeout.
if [[ -f $run/daemon.pid && ! -L $run/daemon.pid ]]; then { read -r -n 16 pid < "$run/daemon.pid"; } 2>/dev/null; fi
[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || in_process
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
