#!/usr/bin/env bash
# Starts and stops the real services Milvault's integration tests and demo use.
#
#   bash scripts/services.sh up [all|a|b]   (re)start from empty instances
#   bash scripts/services.sh down           stop all, remove netns, wipe data
#   bash scripts/services.sh status         one line per service
#   bash scripts/services.sh env            print the env file written by up
#
# Topology (`up` = `up all`):
#   Milvus A  "source": Milvus 2.3.5 standalone in the ROOT network namespace,
#             local storage under $STATE/milvus-a/data,
#             gRPC 127.0.0.1:19530, management HTTP 127.0.0.1:9091.
#   moto      S3 server in the root namespace, bound to 0.0.0.0:9000, so it is
#             127.0.0.1:9000 from the host and 10.99.0.1:9000 from the netns.
#             Bucket milvus-b is created before Milvus B starts.
#   Milvus B  "target": Milvus 2.3.5 standalone in netns milvault-b, storage on
#             moto (bucket milvus-b, root path files), reached from the host
#             over a veth pair at 10.99.0.2:19530 / 10.99.0.2:9091.
# `up a` starts Milvus A only (the demo); `up b` starts moto and Milvus B.
#
# Milvus comes from the PyPI `milvus` wheel (binaries unpacked by setup.sh)
# but is started by lib/milvus_launch.py rather than the `milvus-server`
# wrapper: see that file for why (the wrapper hops to other ports when one
# looks busy, e.g. 9091 -> 9092 because of TIME_WAIT left by a previous run).
# Each service runs in its own session (setsid); `down` kills the groups.
#
# Note: every Milvus 2.3.5 writes /run/milvus/standalone.pid (hard-coded);
# A and B share that file. Harmless: Milvus only takes a non-blocking lock
# on it and carries on when it is held.
#
# `up` writes $STATE/env (export lines, see write_env) for tests to source.
# State dir: ${MILVAULT_SERVICES_DIR:-/tmp/milvault-services}. Logs stay in
# $STATE/*.log after `down` (Milvus' own logs are copied there too).
# Needs root (network namespaces) and scripts/setup.sh run first.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
export MILVAULT_LOG_TAG=services
LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/lib" && pwd)"

STATE="${MILVAULT_SERVICES_DIR:-/tmp/milvault-services}"
TIMEOUT="${MILVAULT_SERVICES_TIMEOUT:-180}" # seconds, per `up`
STOP_GRACE=3 # seconds between SIGTERM and SIGKILL on `down`

NETNS=milvault-b
VETH_HOST=mvault-host # interface names: at most 15 characters
VETH_NS=mvault-ns
HOST_IP=10.99.0.1
NS_IP=10.99.0.2
NET_PREFIX=24

S3_BIND=0.0.0.0
S3_PORT=9000
S3_BUCKET="milvus-b"
# A second bucket on the same server: a backup repository on S3 for the tests.
S3_REPO_BUCKET="milvault-repo"
S3_ROOT=files
S3_KEY=minioadmin
S3_SECRET=minioadmin
S3_REGION=us-east-1

GRPC_PORT=19530
MGMT_PORT=9091
# Every port Milvus A listens on in the root namespace (template defaults;
# 2379/2380 are its embedded etcd). Checked before start so that a foreign
# process gets a clear message rather than a Milvus that dies at start.
A_PORTS=("$GRPC_PORT" "$MGMT_PORT" 19529 19531 53100 21121 21123 21124 13333 2379 2380)

# No proxy for our own addresses (CI environments sometimes set one).
CURL=(curl -sf --noproxy '*' --max-time 5)
STOPPED_SOMETHING=0

# ------------------------------------------------------------ helpers ------
require_root() {
  ((EUID == 0)) || die "run as root (network namespaces, veth)"
}

require_tools() {
  [[ -x "$MILVAULT_VENV/bin/python" ]] || die "$MILVAULT_VENV missing: run scripts/setup.sh first"
  [[ -x "$MILVAULT_BIN/moto_server" ]] || die "$MILVAULT_BIN/moto_server missing: run scripts/setup.sh first"
  [[ -x "$MILVAULT_MILVUS_RUNTIME/bin/milvus" ]] \
    || die "$MILVAULT_MILVUS_RUNTIME/bin/milvus missing: run scripts/setup.sh first"
}

# yaml_get FILE SECTION KEY: value of "SECTION:\n  KEY: value" (two levels,
# enough for milvus.yaml's localStorage.path and proxy.port).
yaml_get() {
  awk -v s="$2:" -v k="  $3:" '
    $0 == s { in_s = 1; next }
    in_s && /^[^ #]/ { in_s = 0 }
    in_s && index($0, k) == 1 { sub(/^[^:]*: */, ""); sub(/ *#.*/, ""); print; exit }
  ' "$1"
}

# Process-group ids of our services are kept in $STATE/<name>.pgid.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

# stop_groups NAME...: stop the process groups of these services, all at
# once. (Whole groups, because a hand-started milvus-server wrapper leaves
# its `milvus` child running on SIGTERM.) Milvus' graceful shutdown takes
# well over 10 s and buys nothing here (`down` wipes the data), so after a
# short grace period the rest is SIGKILLed.
stop_groups() {
  local name file pgid pgids=() i alive
  for name in "$@"; do
    file="$STATE/$name.pgid"
    [[ -f "$file" ]] || continue
    pgid="$(cat "$file")"
    rm -f "$file"
    if [[ ! "$pgid" =~ ^[0-9]+$ ]] || ! group_alive "$pgid"; then continue; fi
    log "stopping $name (process group $pgid)"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    pgids+=("$pgid")
    STOPPED_SOMETHING=1
  done
  for ((i = 0; i < 10 * STOP_GRACE; i++)); do
    alive=0
    for pgid in "${pgids[@]+"${pgids[@]}"}"; do group_alive "$pgid" && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  for pgid in "${pgids[@]}"; do kill -KILL -- "-$pgid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for pgid in "${pgids[@]}"; do group_alive "$pgid" && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  die "process groups ${pgids[*]} survived SIGKILL"
}

# Kill leftovers of ours whose pgid file is gone (e.g. $STATE was deleted by
# hand). Ours = a milvus / milvus-server / launcher / moto_server process
# whose working directory is inside $STATE (each service starts there).
sweep_strays() {
  local dir pid cwd cmd pgid
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    cwd="$(readlink "$dir/cwd" 2>/dev/null)" || continue
    [[ "$cwd" == "$STATE" || "$cwd" == "$STATE"/* ]] || continue
    cmd="$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null)" || continue
    [[ "$cmd" =~ (milvus\ run|milvus-server|milvus_launch|moto_server) ]] || continue
    pgid="$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" || continue
    [[ -n "$pgid" ]] || continue
    log "killing stray process $pid (group $pgid): $cmd"
    kill -KILL -- "-$pgid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    STOPPED_SOMETHING=1
  done
}

# wait_ports_free PORT...: after stopping our services, give the kernel and
# stragglers up to 30 s in all to release these root-namespace ports.
wait_ports_free() {
  local port deadline=$((SECONDS + 30))
  for port in "$@"; do
    while [[ -n "$(ss -Hltn "sport = :$port")" ]] && ((SECONDS < deadline)); do
      sleep 0.1
    done
  done
}

# require_ports_free PORT...: a port still in use now belongs to someone else.
require_ports_free() {
  local port busy=()
  for port in "$@"; do
    if [[ -n "$(ss -Hltn "sport = :$port")" ]]; then
      busy+=("$port")
    fi
  done
  ((${#busy[@]} == 0)) && return 0
  log "ports ${busy[*]} are held by a process that is not ours:"
  for port in "${busy[@]}"; do ss -Hltnp "sport = :$port" >&2 || true; done
  die "free the ports above (another Milvus / S3 server?) and retry"
}

# ------------------------------------------------------------ network ------
netns_up() {
  # Refuse to shadow a network that exists here for another reason.
  if [[ -n "$(ip -4 -o addr show to "$HOST_IP/$NET_PREFIX")" ]]; then
    die "$HOST_IP/$NET_PREFIX is already used on this host: $(ip -4 -o addr show to "$HOST_IP/$NET_PREFIX")"
  fi
  log "network: netns $NETNS, veth $VETH_HOST ($HOST_IP) <-> $VETH_NS ($NS_IP)"
  ip netns add "$NETNS"
  ip netns exec "$NETNS" ip link set lo up
  ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
  ip link set "$VETH_NS" netns "$NETNS"
  ip addr add "$HOST_IP/$NET_PREFIX" dev "$VETH_HOST"
  ip link set "$VETH_HOST" up
  ip netns exec "$NETNS" ip addr add "$NS_IP/$NET_PREFIX" dev "$VETH_NS"
  ip netns exec "$NETNS" ip link set "$VETH_NS" up
}

netns_down() {
  # Deleting the netns destroys its veth end and with it the pair; the host
  # end is deleted explicitly in case the netns was already gone.
  if ip netns list | grep -qw "$NETNS"; then
    ip netns delete "$NETNS"
  fi
  # (The kernel destroys the pair asynchronously: tolerate "already gone".)
  ip link delete "$VETH_HOST" 2>/dev/null || true
}

# ----------------------------------------------------------- services ------
# launch NAME CMD...: start CMD in a new session (setsid) with its cwd in
# $STATE and output to $STATE/NAME.log; record its process-group id.
# From a script (no job control) the background child is not a group leader,
# so setsid does not fork and $! is the new session's and group's id.
launch() {
  local name="$1" pid pgid i
  shift
  (cd "$STATE" && exec setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null) &
  pid=$!
  # Record the id at once (so `down` finds it even if we fail below), then
  # wait until setsid has really made the child a group leader.
  echo "$pid" >"$STATE/$name.pgid"
  for ((i = 0; i < 50; i++)); do
    pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
    [[ "$pgid" == "$pid" ]] && return 0
    sleep 0.1
  done
  die "$name: pid $pid did not become a process-group leader (pgid=$pgid)"
}

start_moto() {
  log "starting moto S3 on $S3_BIND:$S3_PORT"
  launch moto "$MILVAULT_BIN/moto_server" -H "$S3_BIND" -p "$S3_PORT"
}

wait_moto_and_create_bucket() {
  local deadline=$((SECONDS + 60))
  until "${CURL[@]}" -o /dev/null "http://127.0.0.1:$S3_PORT/"; do
    group_alive "$(cat "$STATE/moto.pgid")" || fail_with_log moto "moto_server exited"
    ((SECONDS < deadline)) || fail_with_log moto "moto_server not ready after 60 s"
    sleep 0.2
  done
  # moto does not check signatures: a plain PUT creates the bucket (us-east-1
  # needs no location constraint).
  "${CURL[@]}" -X PUT -o /dev/null "http://127.0.0.1:$S3_PORT/$S3_BUCKET" \
    || fail_with_log moto "could not create bucket $S3_BUCKET"
  "${CURL[@]}" -X PUT -o /dev/null "http://127.0.0.1:$S3_PORT/$S3_REPO_BUCKET" \
    || fail_with_log moto "could not create bucket $S3_REPO_BUCKET"
  # Milvus B will reach moto from inside the netns: prove that path now.
  ip netns exec "$NETNS" "${CURL[@]}" -o /dev/null "http://$HOST_IP:$S3_PORT/$S3_BUCKET" \
    || fail_with_log moto "bucket not reachable from netns $NETNS at $HOST_IP:$S3_PORT"
  log "moto ready, bucket $S3_BUCKET created"
}

# start_milvus a|b: fresh data dir, Milvus 2.3.5 with the binaries setup.sh
# unpacked, config rendered from the wheel's template by lib/milvus_launch.py.
start_milvus() {
  local which="$1" dir="$STATE/milvus-$1" cmd=()
  rm -rf "$dir"
  mkdir -p "$dir"
  cmd=("$MILVAULT_VENV/bin/python" "$LIB_DIR/milvus_launch.py"
    --data "$dir" --bin "$MILVAULT_MILVUS_RUNTIME/bin" --metrics-port "$MGMT_PORT")
  if [[ "$which" == a ]]; then
    cmd+=(--set common.storageType=local)
  else
    # Milvus B sees moto at the host end of the veth.
    cmd=(ip netns exec "$NETNS" "${cmd[@]}"
      --set common.storageType=minio
      --set "minio.address=$HOST_IP"
      --set "minio.port=$S3_PORT"
      --set "minio.accessKeyID=$S3_KEY"
      --set "minio.secretAccessKey=$S3_SECRET"
      --set "minio.bucketName=$S3_BUCKET"
      --set "minio.rootPath=$S3_ROOT"
      --set minio.useSSL=false
      --set "minio.region=$S3_REGION")
  fi
  log "starting milvus-$which"
  launch "milvus-$which" "${cmd[@]}"
}

milvus_host() { if [[ "$1" == a ]]; then echo 127.0.0.1; else echo "$NS_IP"; fi; }

# milvus_ready a|b: gRPC port accepts connections and /healthz answers OK,
# both checked from the host (for B this also proves it listens on the veth
# address, not only on the netns loopback).
milvus_ready() {
  local host
  host="$(milvus_host "$1")"
  port_open "$host" "$GRPC_PORT" \
    && [[ "$("${CURL[@]}" "http://$host:$MGMT_PORT/healthz" 2>/dev/null)" == *OK* ]]
}

# Milvus' stdout/stderr go to $STATE/milvus-X.log; its own log files (etcd,
# standalone-1) live in the data dir: copy them to $STATE/milvus-X-*.log.
collect_milvus_logs() {
  local which="$1" f
  for f in "$STATE/milvus-$which"/logs/*.log; do
    [[ -f "$f" ]] && cp "$f" "$STATE/milvus-$which-$(basename "$f")"
  done
  return 0
}

fail_with_log() {
  local name="$1" msg="$2" f
  log "ERROR: $msg"
  [[ "$name" == milvus-* ]] && collect_milvus_logs "${name#milvus-}"
  for f in "$STATE/$name"*.log; do
    [[ -s "$f" ]] || continue
    log "---- tail of $f"
    tail -n 40 "$f" >&2
  done
  log "services left as they are for inspection; run: bash $0 down"
  exit 1
}

# wait_milvus a [b]: wait for all given instances in parallel, up to TIMEOUT.
wait_milvus() {
  local deadline=$((SECONDS + TIMEOUT)) started=$SECONDS pending=("$@") left which pgid
  while ((${#pending[@]})); do
    left=()
    for which in "${pending[@]}"; do
      if milvus_ready "$which"; then
        check_ports "$which"
        log "milvus-$which ready after $((SECONDS - started)) s"
        continue
      fi
      pgid="$(cat "$STATE/milvus-$which.pgid")"
      # The launcher exec()s Milvus: an empty group means Milvus exited.
      group_alive "$pgid" || fail_with_log "milvus-$which" "milvus-$which exited"
      ((SECONDS < deadline)) || fail_with_log "milvus-$which" "milvus-$which not ready after $TIMEOUT s"
      left+=("$which")
    done
    pending=("${left[@]+"${left[@]}"}")
    ((${#pending[@]})) && sleep 1
  done
  return 0
}

# Belt and braces: the rendered config must say 19530 (9091 is proven by the
# health check).
check_ports() {
  local conf="$STATE/milvus-$1/configs/milvus.yaml" port
  port="$(yaml_get "$conf" proxy port)"
  [[ "$port" == "$GRPC_PORT" ]] || fail_with_log "milvus-$1" "milvus-$1 proxy port is $port, not $GRPC_PORT"
}

write_env() {
  local env="$STATE/env" data
  {
    echo "# Written by scripts/services.sh up at $(date -u +%FT%TZ); source it."
    echo "export MILVAULT_SERVICES_DIR=$STATE"
    if [[ -f "$STATE/milvus-a.pgid" ]]; then
      # Milvus A's local storage root (holds insert_log/, delta_log/, ...),
      # as rendered into its config.
      data="$(yaml_get "$STATE/milvus-a/configs/milvus.yaml" localStorage path)"
      [[ "$data" == /* ]] || die "could not read localStorage.path of milvus-a"
      echo "export MILVAULT_TEST_A_ADDR=http://127.0.0.1:$GRPC_PORT"
      echo "export MILVAULT_TEST_A_MGMT=http://127.0.0.1:$MGMT_PORT"
      echo "export MILVAULT_TEST_A_DATA=$data"
    fi
    if [[ -f "$STATE/milvus-b.pgid" ]]; then
      echo "export MILVAULT_TEST_B_ADDR=http://$NS_IP:$GRPC_PORT"
      echo "export MILVAULT_TEST_B_MGMT=http://$NS_IP:$MGMT_PORT"
      echo "export MILVAULT_TEST_B_BUCKET=$S3_BUCKET"
      echo "export MILVAULT_TEST_S3_REPO_BUCKET=$S3_REPO_BUCKET"
      echo "export MILVAULT_TEST_B_ROOT=$S3_ROOT"
    fi
    if [[ -f "$STATE/moto.pgid" ]]; then
      # From the host; Milvus B itself uses http://$HOST_IP:$S3_PORT.
      echo "export MILVAULT_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
      echo "export MILVAULT_TEST_S3_ACCESS_KEY=$S3_KEY"
      echo "export MILVAULT_TEST_S3_SECRET_KEY=$S3_SECRET"
      echo "export MILVAULT_TEST_S3_REGION=$S3_REGION"
    fi
  } >"$env.tmp"
  mv "$env.tmp" "$env"
}

# ----------------------------------------------------------- commands ------
cmd_down() {
  require_root
  mkdir -p "$STATE"
  local which
  stop_groups milvus-a milvus-b moto
  sweep_strays
  netns_down
  if ((STOPPED_SOMETHING)); then
    wait_ports_free "${A_PORTS[@]}" "$S3_PORT"
  fi
  for which in a b; do
    collect_milvus_logs "$which"
    rm -rf "$STATE/milvus-$which"
  done
  rm -f "$STATE/env"
  log "down"
}

cmd_up() {
  local what="${1:-all}" start=$SECONDS
  case "$what" in all | a | b) ;; *) die "usage: $0 up [all|a|b]" ;; esac
  require_root
  require_tools
  cmd_down
  rm -f "$STATE"/*.log
  mkdir -p "$STATE"

  local milvus=()
  [[ "$what" != b ]] && milvus+=(a)
  [[ "$what" != a ]] && milvus+=(b)

  if [[ "$what" != b ]]; then
    require_ports_free "${A_PORTS[@]}"
    start_milvus a
  fi
  if [[ "$what" != a ]]; then
    require_ports_free "$S3_PORT"
    netns_up
    start_moto
    wait_moto_and_create_bucket
    start_milvus b
  fi
  wait_milvus "${milvus[@]}"
  write_env
  log "up ($what) in $((SECONDS - start)) s; env: $STATE/env"
  cat "$STATE/env"
}

cmd_status() {
  local name pgid state rc=0 any=0
  for name in moto milvus-a milvus-b; do
    [[ -f "$STATE/$name.pgid" ]] || { printf '%-9s not started\n' "$name"; continue; }
    any=1
    pgid="$(cat "$STATE/$name.pgid")"
    if ! group_alive "$pgid"; then
      state="DEAD (pgid $pgid)"; rc=1
    elif [[ "$name" == moto ]]; then
      if "${CURL[@]}" -o /dev/null "http://127.0.0.1:$S3_PORT/$S3_BUCKET"; then
        state="ready http://127.0.0.1:$S3_PORT bucket $S3_BUCKET"
      else
        state="NOT READY"; rc=1
      fi
    elif milvus_ready "${name#milvus-}"; then
      state="ready $(milvus_host "${name#milvus-}"):$GRPC_PORT"
    else
      state="NOT READY"; rc=1
    fi
    printf '%-9s %s\n' "$name" "$state"
  done
  ((any)) || rc=3
  return "$rc"
}

cmd_env() {
  [[ -f "$STATE/env" ]] || die "no $STATE/env: run: bash $0 up"
  cat "$STATE/env"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up [all|a|b] | down | status | env" >&2
    exit 2
    ;;
esac
