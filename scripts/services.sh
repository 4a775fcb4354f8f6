#!/usr/bin/env bash
# Starts and stops the real services Milvault's integration tests and demo use.
#
#   bash scripts/services.sh up [all|a|b|c] (re)start from empty instances
#   bash scripts/services.sh down [all|c]   stop all (or C), remove netns, wipe data
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
#   Milvus C  "old": Milvus 2.2.16 standalone in netns milvault-c, local
#             storage under $STATE/milvus-c/data (on the host filesystem, so
#             tests read and write its binlog folders directly), reached from
#             the host over its own veth pair at 10.98.0.2:19530 / :9091.
#             Started in parallel with A and B.
# `up a` starts Milvus A only (the demo); `up b` starts moto and Milvus B.
# `up a`, `up b` and `up all` first stop everything (as `down`). `up c` and
# `down c` touch Milvus C only: A, B and moto keep running (C shares nothing
# with them), and the env file keeps their lines.
#
# Names and addresses of the two namespaces can be overridden (e.g. to try
# this script beside a running set, with another MILVAULT_SERVICES_DIR):
#   MILVAULT_B_NETNS MILVAULT_B_VETH_HOST MILVAULT_B_VETH_NS
#   MILVAULT_B_HOST_IP MILVAULT_B_NS_IP (defaults milvault-b, mvault-host,
#   mvault-ns, 10.99.0.1, 10.99.0.2), and the same with C_ (defaults
#   milvault-c, mvault-c-host, mvault-c-ns, 10.98.0.1, 10.98.0.2); /24 each.
#
# Milvus comes from the PyPI `milvus` wheel (binaries unpacked by setup.sh)
# but is started by lib/milvus_launch.py rather than the `milvus-server`
# wrapper: see that file for why (the wrapper hops to other ports when one
# looks busy, e.g. 9091 -> 9092 because of TIME_WAIT left by a previous run).
# Each service runs in its own session (setsid); `down` kills the groups.
#
# Note: every Milvus (2.3.5 and 2.2.16) writes /run/milvus/standalone.pid
# (hard-coded); A, B and C share that file. Harmless: Milvus only takes a
# non-blocking lock on it and carries on when it is held.
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

NETNS="${MILVAULT_B_NETNS:-milvault-b}"
VETH_HOST="${MILVAULT_B_VETH_HOST:-mvault-host}" # interface names: at most 15 characters
VETH_NS="${MILVAULT_B_VETH_NS:-mvault-ns}"
HOST_IP="${MILVAULT_B_HOST_IP:-10.99.0.1}"
NS_IP="${MILVAULT_B_NS_IP:-10.99.0.2}"
NET_PREFIX=24

# Milvus C (2.2.16) in a namespace of its own.
C_NETNS="${MILVAULT_C_NETNS:-milvault-c}"
C_VETH_HOST="${MILVAULT_C_VETH_HOST:-mvault-c-host}"
C_VETH_NS="${MILVAULT_C_VETH_NS:-mvault-c-ns}"
C_HOST_IP="${MILVAULT_C_HOST_IP:-10.98.0.1}"
C_NS_IP="${MILVAULT_C_NS_IP:-10.98.0.2}"

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

require_tools_c() {
  [[ -x "$MILVAULT_VENV_22/bin/python" ]] || die "$MILVAULT_VENV_22 missing: run scripts/setup.sh first"
  [[ -x "$MILVAULT_MILVUS22_RUNTIME/bin/milvus" ]] \
    || die "$MILVAULT_MILVUS22_RUNTIME/bin/milvus missing: run scripts/setup.sh first"
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

# sweep_strays [DIR]: kill leftovers of ours whose pgid file is gone (e.g.
# $STATE was deleted by hand). Ours = a milvus / milvus-server / launcher /
# moto_server process whose working directory is inside DIR (default $STATE;
# each service starts there, and Milvus runs in $STATE/milvus-X).
sweep_strays() {
  local top="${1:-$STATE}" dir pid cwd cmd pgid
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    cwd="$(readlink "$dir/cwd" 2>/dev/null)" || continue
    [[ "$cwd" == "$top" || "$cwd" == "$top"/* ]] || continue
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
# netns_up NETNS VETH_HOST VETH_NS HOST_IP NS_IP: a namespace with loopback
# up and a veth pair HOST_IP (host end) <-> NS_IP (inside), both /NET_PREFIX.
netns_up() {
  local netns="$1" veth_host="$2" veth_ns="$3" host_ip="$4" ns_ip="$5"
  # Refuse to shadow a network that exists here for another reason.
  if [[ -n "$(ip -4 -o addr show to "$host_ip/$NET_PREFIX")" ]]; then
    die "$host_ip/$NET_PREFIX is already used on this host: $(ip -4 -o addr show to "$host_ip/$NET_PREFIX")"
  fi
  log "network: netns $netns, veth $veth_host ($host_ip) <-> $veth_ns ($ns_ip)"
  ip netns add "$netns"
  ip netns exec "$netns" ip link set lo up
  ip link add "$veth_host" type veth peer name "$veth_ns"
  ip link set "$veth_ns" netns "$netns"
  ip addr add "$host_ip/$NET_PREFIX" dev "$veth_host"
  ip link set "$veth_host" up
  ip netns exec "$netns" ip addr add "$ns_ip/$NET_PREFIX" dev "$veth_ns"
  ip netns exec "$netns" ip link set "$veth_ns" up
}

# netns_down NETNS VETH_HOST
netns_down() {
  local netns="$1" veth_host="$2" pid
  # Deleting the netns destroys its veth end and with it the pair; the host
  # end is deleted explicitly in case the netns was already gone.
  if ip netns list | awk '{print $1}' | grep -qxF "$netns"; then
    # Anything still running in the namespace is a leftover of our service
    # there (its group was stopped above): it would keep the namespace and
    # the veth alive after `ip netns delete`.
    for pid in $(ip netns pids "$netns" 2>/dev/null); do
      log "killing leftover process $pid in netns $netns"
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$netns"
  fi
  # (The kernel destroys the pair asynchronously: tolerate "already gone".)
  ip link delete "$veth_host" 2>/dev/null || true
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

# start_milvus a|b|c: fresh data dir, config rendered from the wheel's
# template by lib/milvus_launch.py, binaries setup.sh unpacked: Milvus 2.3.5
# for A and B, 2.2.16 (its own venv and runtime) for C.
start_milvus() {
  local which="$1" dir="$STATE/milvus-$1" cmd=() venv="$MILVAULT_VENV" runtime="$MILVAULT_MILVUS_RUNTIME"
  if [[ "$which" == c ]]; then
    venv="$MILVAULT_VENV_22"
    runtime="$MILVAULT_MILVUS22_RUNTIME"
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  cmd=("$venv/bin/python" "$LIB_DIR/milvus_launch.py"
    --data "$dir" --bin "$runtime/bin" --metrics-port "$MGMT_PORT")
  case "$which" in
    a) cmd+=(--set common.storageType=local) ;;
    b)
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
      ;;
    c)
      # The 2.2 wheel's template says `log.level: debug` (upstream Milvus
      # 2.2 ships info, as the 2.3.5 wheel does): debug logs cost disk and
      # CPU on a 2-core machine for nothing the tests read.
      # syncPeriod: 2.2 writes the deletes of flushed segments only on this
      # periodic sync (600 s by default) and a backup waits for it
      # (GetFlushAllState); 15 s keeps each 2.2 backup in the tests near a
      # minute instead of eleven. Milvault behaves the same with either value.
      cmd=(ip netns exec "$C_NETNS" "${cmd[@]}"
        --set common.storageType=local
        --set log.level=info
        --set dataNode.segment.syncPeriod=15)
      ;;
  esac
  log "starting milvus-$which"
  launch "milvus-$which" "${cmd[@]}"
}

milvus_host() {
  case "$1" in
    a) echo 127.0.0.1 ;;
    b) echo "$NS_IP" ;;
    c) echo "$C_NS_IP" ;;
  esac
}

# milvus_ready a|b|c: gRPC port accepts connections and /healthz answers OK,
# both checked from the host (for B and C this also proves it listens on the
# veth address, not only on the netns loopback).
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
    # The venv's Python has pyarrow: tests read exported Parquet with it.
    echo "export MILVAULT_TEST_PYTHON=$MILVAULT_VENV/bin/python"
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
    if [[ -f "$STATE/milvus-c.pgid" ]]; then
      # Milvus C (2.2.16): local storage root, on the host filesystem.
      data="$(yaml_get "$STATE/milvus-c/configs/milvus.yaml" localStorage path)"
      [[ "$data" == /* ]] || die "could not read localStorage.path of milvus-c"
      echo "export MILVAULT_TEST_C_ADDR=http://$C_NS_IP:$GRPC_PORT"
      echo "export MILVAULT_TEST_C_MGMT=http://$C_NS_IP:$MGMT_PORT"
      echo "export MILVAULT_TEST_C_DATA=$data"
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
# down_c: stop Milvus C only and remove its namespace and data.
down_c() {
  stop_groups milvus-c
  sweep_strays "$STATE/milvus-c"
  netns_down "$C_NETNS" "$C_VETH_HOST"
  collect_milvus_logs c
  rm -rf "$STATE/milvus-c"
}

cmd_down() {
  local what="${1:-all}" which
  case "$what" in all | c) ;; *) die "usage: $0 down [all|c]" ;; esac
  require_root
  mkdir -p "$STATE"
  if [[ "$what" == c ]]; then
    down_c
    # Keep the env file true for what still runs.
    if [[ -f "$STATE/env" ]]; then write_env; fi
    log "down (c)"
    return 0
  fi
  stop_groups milvus-a milvus-b milvus-c moto
  sweep_strays
  netns_down "$NETNS" "$VETH_HOST"
  netns_down "$C_NETNS" "$C_VETH_HOST"
  if ((STOPPED_SOMETHING)); then
    wait_ports_free "${A_PORTS[@]}" "$S3_PORT"
  fi
  for which in a b c; do
    collect_milvus_logs "$which"
    rm -rf "$STATE/milvus-$which"
  done
  rm -f "$STATE/env"
  log "down"
}

cmd_up() {
  local what="${1:-all}" start=$SECONDS milvus=()
  case "$what" in
    all) milvus=(a b c) ;;
    a | b | c) milvus=("$what") ;;
    *) die "usage: $0 up [all|a|b|c]" ;;
  esac
  require_root
  if [[ "$what" != c ]]; then require_tools; fi
  if [[ "$what" == all || "$what" == c ]]; then require_tools_c; fi

  if [[ "$what" == c ]]; then
    # C alone: A, B and moto stay as they are.
    mkdir -p "$STATE"
    down_c
    rm -f "$STATE"/milvus-c*.log
  else
    cmd_down
    rm -f "$STATE"/*.log
    mkdir -p "$STATE"
  fi

  if [[ "$what" == all || "$what" == a ]]; then
    require_ports_free "${A_PORTS[@]}"
    start_milvus a
  fi
  # C before B: it needs nothing else, so it boots while moto and B are
  # being set up (all instances are then awaited together).
  if [[ "$what" == all || "$what" == c ]]; then
    netns_up "$C_NETNS" "$C_VETH_HOST" "$C_VETH_NS" "$C_HOST_IP" "$C_NS_IP"
    start_milvus c
  fi
  if [[ "$what" == all || "$what" == b ]]; then
    require_ports_free "$S3_PORT"
    netns_up "$NETNS" "$VETH_HOST" "$VETH_NS" "$HOST_IP" "$NS_IP"
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
  for name in moto milvus-a milvus-b milvus-c; do
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
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up [all|a|b|c] | down [all|c] | status | env" >&2
    exit 2
    ;;
esac
