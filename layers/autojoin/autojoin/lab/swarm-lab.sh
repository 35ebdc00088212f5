#!/usr/bin/env bash
# swarm-lab.sh - a real multi-node Docker Swarm on ONE machine, for end-to-end tests.
# (autojoin's copy of the recipe in the shared lab folder; driven by autojoin.lab.Lab and
# `autojoin lab ...`. Changes: `add N AZ` pins a node's AZ; `install` also checks iproute2/util-linux.)
#
# Each node is its own dockerd (Debian's docker.io 20.10) + containerd, with its own
# data-root/exec-root/socket, its own hostname (UTS namespace), its own private mount
# namespace (so nothing it mounts leaks), and - in the default "netns" mode - its own
# network namespace <prefix>-nN with eth0 = 10.200.0.(10+N)/24, all plugged into a
# bridge that lives in a hub namespace <prefix>-hub. Nothing is added to the root
# network namespace, no iptables rules are written, no traffic leaves the lab.
# Containers are NOT supported (no images, vfs, --bridge=none): swarm membership only
# (init/join/leave/promote/demote/node ls/node rm/labels/quorum loss and recovery).
#
# Usage (root):
#   swarm-lab.sh install                 apt-get install docker.io (+iproute2, util-linux)
#   swarm-lab.sh up [MANAGERS] [WORKERS] tear down any old lab, start a fresh swarm (default 3 1)
#   swarm-lab.sh down                    stop every lab daemon by PID, delete namespaces + state
#   swarm-lab.sh status                  daemons, and `node ls` from a reachable manager
#   swarm-lab.sh env N                   print `export DOCKER_HOST=...` for node N
#   swarm-lab.sh docker N ARGS...        run the docker CLI against node N
#   swarm-lab.sh add [N] [AZ]            start a bare daemon for node N (next free if omitted), not joined;
#                                        AZ (engine label lab.az) is remembered in the node's folder
#   swarm-lab.sh join N manager|worker   join node N via the current leader's token
#   swarm-lab.sh stop N | kill N         graceful stop (SIGTERM) | crash (SIGKILL) node N's daemon
#   swarm-lab.sh start N                 (re)start node N's daemon on its existing data-root
#   swarm-lab.sh cut N | heal N          partition node N off the network / reconnect it (netns mode)
#   swarm-lab.sh leader                  print the node number of the current raft leader
#   swarm-lab.sh wait-leader [SECS]      wait until some manager answers `node ls` (default 90 s)
#
# Environment:
#   SWL_ROOT=/tmp/swarm-lab   state (one folder per node; a manager's raft WAL preallocates ~128 MB)
#   SWL_PREFIX=swl            namespace/veth prefix
#   SWL_NET=10.200.0          /24 used ONLY inside the lab's own namespaces (node N = .(10+N))
#   SWL_MODE=netns|loopback   loopback: no netns, node N advertises 127.0.0.(10+N) in the root ns
#                             (works, but shares docker_gwbridge in the root ns and `cut` is unavailable)
#   SWL_AZS="a b c"           engine label lab.az round-robin over nodes (for AZ-rebalancing tests)
#   SWL_LOG_LEVEL=info        dockerd --log-level
#   SWL_STOP_WAIT=15          seconds `stop` waits after SIGTERM before SIGKILL (`down` uses 3)
#   DOCKER_CLI=/usr/bin/docker
#
# Measured on a 2-core/24 GB Debian bookworm VM (firecracker, cgroup v1): install 7-15 s;
# `up 3 1` ~2 s (daemons ready ~0.4 s, swarm formed ~1.5 s); `up 5 1` ~4 s; ~115-125 MiB RSS
# per node (dockerd ~85-100 + containerd ~38), idle CPU <1%; `down` ~3 s.
# Timing caveats for tests: a SIGKILLed node still shows Ready for ~5-10 s; losing quorum is
# reported ("The swarm does not have a leader") 10-40 s after the majority goes; a healed
# partition or restarted majority gets a leader back after 1-65 s. Poll with >=120 s budgets.
# In CI:  bash swarm-lab.sh install && bash swarm-lab.sh up 3 1; trap 'bash swarm-lab.sh down' EXIT
set -euo pipefail

ROOT=${SWL_ROOT:-/tmp/swarm-lab}
PREFIX=${SWL_PREFIX:-swl}
NET=${SWL_NET:-10.200.0}
# a running lab remembers its mode, so later commands need not repeat SWL_MODE
if [ -z "${SWL_MODE:-}" ] && [ -f "$ROOT/mode" ]; then SWL_MODE=$(cat "$ROOT/mode"); fi
MODE=${SWL_MODE:-netns}
case $MODE in netns|loopback) ;; *) echo "SWL_MODE must be netns or loopback" >&2; exit 2 ;; esac
AZS=${SWL_AZS:-a b c}
LOGLEVEL=${SWL_LOG_LEVEL:-info}
HUB=$PREFIX-hub
if [ -z "${DOCKER_CLI:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER_CLI=/usr/bin/docker; else DOCKER_CLI=docker; fi
fi

log() { printf '[swarm-lab] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

ndir() { echo "$ROOT/n$1"; }
nsock() { echo "unix://$ROOT/n$1/docker.sock"; }
nns() { echo "$PREFIX-n$1"; }
nip() {
  if [ "$MODE" = loopback ]; then echo "127.0.0.$((10 + $1))"; else echo "$NET.$((10 + $1))"; fi
}
dk() { local n=$1; shift; "$DOCKER_CLI" -H "$(nsock "$n")" "$@"; }
nodes() { # node numbers that have a state folder, ascending
  [ -d "$ROOT" ] || return 0
  local d
  for d in "$ROOT"/n[0-9]*; do
    if [ -d "$d" ]; then echo "${d##*/n}"; fi
  done | sort -n
}

# pid_is_ours PID NODE: the process exists and its command line mentions this node's folder
pid_is_ours() {
  local pid=$1 n=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$(ndir "$n")/"
}

# pid_alive PID: the process exists and is not a zombie. For a daemon this script has just started: until
# nsenter, unshare and sh have all exec'd, its command line is still this script's (a forked bash), so
# pid_is_ours would call a daemon that is merely slow to start (a loaded machine) dead.
pid_alive() {
  local pid=$1 st
  [ -n "$pid" ] || return 1
  st=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }
need_tools() {
  command -v dockerd >/dev/null || die "dockerd missing: run '$0 install' (apt-get install -y docker.io)"
  command -v nsenter >/dev/null && command -v unshare >/dev/null || die "util-linux (nsenter/unshare) missing"
  command -v ip >/dev/null || die "iproute2 missing"
}

cmd_install() {
  need_root
  export DEBIAN_FRONTEND=noninteractive
  local t0; t0=$(now_ms)
  if command -v dockerd >/dev/null && command -v ip >/dev/null && command -v nsenter >/dev/null; then
    log "docker.io already installed: $(dockerd --version)"; return 0
  fi
  apt-get update -qq
  # policy-rc.d (if any) keeps the packaged service from starting; we start our own daemons.
  apt-get install -y -qq --no-install-recommends docker.io iproute2 util-linux >/dev/null
  log "installed $(dockerd --version) in $(( $(now_ms) - t0 )) ms"
}

net_setup_hub() {
  [ "$MODE" = netns ] || return 0
  ip netns list | grep -qx "$HUB\( .*\)\?" && return 0
  ip netns add "$HUB"
  ip -n "$HUB" link set lo up
  ip -n "$HUB" link add br0 type bridge
  ip -n "$HUB" link set br0 up
}

net_setup_node() {
  local n=$1 ns; ns=$(nns "$n")
  [ "$MODE" = netns ] || return 0
  ip netns list | grep -q "^$ns\b" && return 0
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # create the pair inside the hub, then move the node end into the node namespace
  ip -n "$HUB" link add "$ns-h" type veth peer name eth0
  ip -n "$HUB" link set eth0 netns "$ns"
  ip -n "$HUB" link set "$ns-h" master br0 up
  ip -n "$ns" addr add "$(nip "$n")/24" dev eth0
  ip -n "$ns" link set eth0 up
}

start_daemon() {
  local n=$1 d; d=$(ndir "$n")
  if pid_is_ours "$(cat "$d/dockerd.pid" 2>/dev/null)" "$n"; then log "n$n already running"; return 0; fi
  mkdir -p "$d/data" "$d/exec"
  local az
  if [ -s "$d/az" ]; then az=$(cat "$d/az"); else az=$(echo "$AZS" | awk -v i="$n" '{print $(((i-1)%NF)+1)}'); fi
  local netcmd=()
  [ "$MODE" = netns ] && netcmd=(nsenter "--net=/run/netns/$(nns "$n")")
  # nsenter/unshare/sh all exec, so $! is dockerd's own PID.
  "${netcmd[@]}" unshare --uts --mount --propagation private \
    sh -c 'hostname "$0" && exec "$@"' "$PREFIX-n$n" \
    dockerd --storage-driver=vfs --iptables=false --ip6tables=false --ip-forward=false \
    --ip-masq=false --bridge=none --log-level="$LOGLEVEL" \
    --label "lab.node=n$n" --label "lab.az=$az" \
    --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/exec/dockerd.pid" \
    -H "$(nsock "$n")" >>"$d/dockerd.log" 2>&1 </dev/null &
  echo $! >"$d/dockerd.pid"
}

wait_daemon() {
  local n=$1 d; d=$(ndir "$n")
  for _ in $(seq 1 300); do
    if dk "$n" version >/dev/null 2>&1; then
      cat "$d/exec/containerd/containerd.pid" >"$d/containerd.pid" 2>/dev/null || true
      return 0
    fi
    pid_alive "$(cat "$d/dockerd.pid")" || { tail -5 "$d/dockerd.log" >&2; die "dockerd n$n exited"; }
    sleep 0.1
  done
  die "dockerd n$n not ready after 30 s (see $d/dockerd.log)"
}

# running PID: exists and is not a zombie (a dying daemon's cmdline is already empty)
running() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

stop_pids() { # stop_pids SIGNAL WAIT_SECS NODE...  (only PIDs whose cmdline names the node's folder)
  local sig=$1 wait=$2 n f pid alive; shift 2
  local pids=()
  for n in "$@"; do
    for f in dockerd.pid containerd.pid; do
      # on TERM, dockerd stops its own containerd; KILL takes both
      if [ "$sig" = TERM ] && [ "$f" = containerd.pid ]; then continue; fi
      pid=$(cat "$(ndir "$n")/$f" 2>/dev/null || true)
      if pid_is_ours "$pid" "$n"; then kill "-$sig" "$pid" 2>/dev/null || true; pids+=("$pid"); fi
    done
  done
  for _ in $(seq 1 $((wait * 4))); do
    alive=0
    for pid in "${pids[@]}"; do if running "$pid"; then alive=1; fi; done
    [ $alive = 0 ] && return 0
    sleep 0.25
  done
  return 1
}

halt_nodes() { # TERM then KILL dockerd and containerd of the given nodes, by PID only
  [ $# -gt 0 ] || return 0
  stop_pids TERM "${SWL_STOP_WAIT:-15}" "$@" || true
  stop_pids KILL 5 "$@" || true   # a dockerd that ignored TERM, an orphaned containerd
}

cmd_down() {
  need_root
  local all; all=$(nodes | tr '\n' ' ')
  # the lab is being deleted: no need for a long graceful shutdown
  # shellcheck disable=SC2086
  SWL_STOP_WAIT=3 halt_nodes $all
  # anything still inside our own namespaces (even if the state folder was lost)
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-\(n[0-9]\+\|hub\)$" || true); do
    local left
    left=$(ip netns pids "$ns" 2>/dev/null || true)
    for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 20); do
      local any=0
      for pid in $left; do if running "$pid"; then any=1; fi; done
      [ $any = 0 ] && break
      sleep 0.25
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -f "$ROOT/.created-docker_gwbridge" ]; then ip link del docker_gwbridge 2>/dev/null || true; fi
  rm -rf "$ROOT"
  log "down: lab removed"
}

leader() {
  local n id
  for n in $(nodes); do
    id=$(timeout 10 "$DOCKER_CLI" -H "$(nsock "$n")" node ls --filter role=manager \
         --format '{{.ID}} {{.ManagerStatus}}' 2>/dev/null | awk '$2=="Leader"{print $1}') || continue
    [ -n "$id" ] || continue
    for m in $(nodes); do
      [ "$(timeout 5 "$DOCKER_CLI" -H "$(nsock "$m")" info --format '{{.Swarm.NodeID}}' 2>/dev/null)" = "$id" ] && { echo "$m"; return 0; }
    done
  done
  return 1
}

cmd_wait_leader() {
  local secs=${1:-90} t0 n; t0=$(now_ms)
  while [ $(( $(now_ms) - t0 )) -lt $((secs * 1000)) ]; do
    for n in $(nodes); do
      timeout 10 "$DOCKER_CLI" -H "$(nsock "$n")" node ls >/dev/null 2>&1 && { log "leader reachable after $(( $(now_ms) - t0 )) ms"; return 0; }
    done
    sleep 0.5
  done
  die "no leader after ${secs}s"
}

cmd_join() {
  local n=$1 role=$2 l tok
  l=$(leader) || die "no leader"
  tok=$(dk "$l" swarm join-token -q "$role")
  local listen=()
  [ "$MODE" = loopback ] && listen=(--listen-addr "$(nip "$n"):2377")
  dk "$n" swarm join --token "$tok" --advertise-addr "$(nip "$n")" "${listen[@]}" "$(nip "$l"):2377" >/dev/null
  log "n$n joined as $role (via leader n$l)"
}

cmd_add() {
  local n=${1:-} az=${2:-}
  if [ -z "$n" ]; then n=$(nodes | tail -1); n=$(( ${n:-0} + 1 )); fi
  mkdir -p "$ROOT" "$(ndir "$n")"
  [ -f "$ROOT/mode" ] || echo "$MODE" >"$ROOT/mode"
  if [ -n "$az" ]; then echo "$az" >"$(ndir "$n")/az"; fi
  net_setup_hub; net_setup_node "$n"; start_daemon "$n"; wait_daemon "$n"
  echo "$n"
}

cmd_up() {
  need_root; need_tools
  local managers=${1:-3} workers=${2:-1} t0 t1 n total
  total=$((managers + workers))
  [ "$managers" -ge 1 ] || die "need at least one manager"
  cmd_down
  t0=$(now_ms)
  mkdir -p "$ROOT"
  echo "$MODE" >"$ROOT/mode"
  if [ "$MODE" = loopback ] && ! ip link show docker_gwbridge >/dev/null 2>&1; then
    touch "$ROOT/.created-docker_gwbridge"
  fi
  net_setup_hub
  for n in $(seq 1 "$total"); do net_setup_node "$n"; start_daemon "$n"; done
  for n in $(seq 1 "$total"); do wait_daemon "$n"; done
  t1=$(now_ms); log "$total daemons ready in $((t1 - t0)) ms"
  local listen=()
  [ "$MODE" = loopback ] && listen=(--listen-addr "$(nip 1):2377")
  dk 1 swarm init --advertise-addr "$(nip 1)" "${listen[@]}" \
    --default-addr-pool 10.201.0.0/16 --default-addr-pool-mask-length 24 >/dev/null
  local mt wt
  mt=$(dk 1 swarm join-token -q manager); wt=$(dk 1 swarm join-token -q worker)
  for n in $(seq 2 "$total"); do
    listen=()
    [ "$MODE" = loopback ] && listen=(--listen-addr "$(nip "$n"):2377")
    if [ "$n" -le "$managers" ]; then tok=$mt; else tok=$wt; fi
    dk "$n" swarm join --token "$tok" --advertise-addr "$(nip "$n")" "${listen[@]}" "$(nip 1):2377" >/dev/null
  done
  log "swarm of $managers manager(s) + $workers worker(s) formed in $(( $(now_ms) - t1 )) ms (total $(( $(now_ms) - t0 )) ms)"
  for n in $(seq 1 "$total"); do echo "n$n $(nip "$n") $(nsock "$n")" ; done >"$ROOT/nodes.txt"
  cmd_status
}

cmd_status() {
  local n d pid rss cpid
  for n in $(nodes); do
    d=$(ndir "$n"); pid=$(cat "$d/dockerd.pid" 2>/dev/null || true)
    if pid_is_ours "$pid" "$n"; then
      rss=$(ps -o rss= -p "$pid" || echo 0)
      cpid=$(cat "$d/containerd.pid" 2>/dev/null || true)
      pid_is_ours "$cpid" "$n" && rss=$((rss + $(ps -o rss= -p "$cpid" || echo 0)))
      echo "n$n $(nip "$n") dockerd=$pid rss=$((rss / 1024))MiB $(dk "$n" info --format 'swarm={{.Swarm.LocalNodeState}} manager={{.Swarm.ControlAvailable}}' 2>/dev/null)"
    else
      echo "n$n $(nip "$n") dockerd=stopped"
    fi
  done
  for n in $(nodes); do
    timeout 10 "$DOCKER_CLI" -H "$(nsock "$n")" node ls 2>/dev/null && return 0
  done
  echo "(no manager answered node ls)"
}

main() {
  local c=${1:-help}; shift || true
  case $c in
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) echo "export DOCKER_HOST=$(nsock "${1:?node}")" ;;
    docker) n=${1:?node}; shift; dk "$n" "$@" ;;
    add) need_root; need_tools; cmd_add "${1:-}" "${2:-}" ;;
    join) cmd_join "${1:?node}" "${2:?manager|worker}" ;;
    stop) halt_nodes "${1:?node}"; log "n$1 stopped" ;;
    kill) stop_pids KILL 5 "${1:?node}" || true; log "n$1 killed (dockerd+containerd SIGKILL)" ;;
    start) start_daemon "${1:?node}"; wait_daemon "$1"; log "n$1 started" ;;
    cut) [ "$MODE" = netns ] || die "cut needs SWL_MODE=netns"; ip -n "$HUB" link set "$(nns "${1:?node}")-h" down; log "n$1 cut off" ;;
    heal) [ "$MODE" = netns ] || die "heal needs SWL_MODE=netns"; ip -n "$HUB" link set "$(nns "${1:?node}")-h" up; log "n$1 reconnected" ;;
    leader) leader ;;
    wait-leader) cmd_wait_leader "${1:-90}" ;;
    help|-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command $c (try help)" ;;
  esac
}
main "$@"
