#!/usr/bin/env bash
# A walk-through of `xennet bridge` on a simulated dom0: a LAN namespace with the gateway and a
# dom0 namespace whose eth0 is wired to it. Everything happens inside those two namespaces,
# which are deleted at the end (also on failure or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces)"; exit 1; }
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/src/cli/main.js ] || npm run --silent build

id=$$
lan="xnt-$id-try-lan"; dom0="xnt-$id-try-dom0"; state=$(mktemp -d)
cleanup() { ip netns del "$dom0" 2>/dev/null || true; ip netns del "$lan" 2>/dev/null || true; rm -rf "$state"; }
trap cleanup EXIT INT TERM

ip netns add "$lan"; ip netns add "$dom0"
ip -n "$lan" link set lo up; ip -n "$dom0" link set lo up
ip -n "$lan" link add lan0 type veth peer name eth0 netns "$dom0"
ip -n "$lan" addr add 192.168.0.1/24 dev lan0; ip -n "$lan" link set lan0 up
ip -n "$dom0" addr add 192.168.0.2/24 dev eth0; ip -n "$dom0" addr add 2001:db8::2/64 dev eth0 nodad
ip -n "$dom0" link set eth0 up; ip -n "$dom0" route add default via 192.168.0.1

xennet() { XENNET_STATE_DIR="$state" ip netns exec "$dom0" node dist/src/cli/main.js "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "dom0 before the takeover"; ip -n "$dom0" -br addr; ip -n "$dom0" route
step "xennet bridge start"; xennet bridge start
step "xennet bridge status"; xennet bridge status
step "dom0 pings the gateway through xenbr0"; ip netns exec "$dom0" ping -c 2 -W 2 192.168.0.1 | tail -2
step "xennet bridge stop"; xennet bridge stop
step "dom0 after stop (as before)"; ip -n "$dom0" -br addr; ip -n "$dom0" route
