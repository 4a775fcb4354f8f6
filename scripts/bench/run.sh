#!/usr/bin/env bash
# The performance benchmark (issue 11): one command that measures Milvault against
# baselines on this machine and prints one table (README.md, "Benchmark").
#
#   sudo bash scripts/bench/run.sh            # full run (~1.2 GiB and ~4.2 GiB; ~30-60 min)
#   sudo bash scripts/bench/run.sh --quick    # small sizes, 2 rounds: checks every step
#   sudo bash scripts/bench/run.sh --rev HEAD # measure that commit (built from a clean
#                                             # `git archive` of it), not the work tree
#
# What it does, in one run:
#   1. Checks the tools scripts/setup.sh installs (Milvus 2.3.5 runtime, rclone, jq);
#      installs s3s-fs 0.14.1 (a fast S3 server over a folder) into .tools/ when
#      missing; release builds of milvault-server, milvault and the bench bins
#      (tests/src/bin/bench_{load,import,rpc_load}.rs).
#   2. Its own services, never the test services of scripts/services.sh: s3s-fs on
#      10.92.0.1:9100 (root namespace, buckets milvus-s and repo), Milvus 2.3.5 "a" in
#      netns mvbench-a (local storage, 10.91.0.2) and "s" in netns mvbench-s (storage
#      on s3s-fs, 10.92.0.2), started with scripts/lib/milvus_launch.py. Each is
#      filled by bench_load with ~1.2 GiB of segment data (4 collections in 2
#      databases, 768-d and 128-d float vectors, partitions, many segments, ~1% of
#      rows deleted; auto-compaction off, no vector index).
#   3. milvault-server (release) with clusters a, s and repositories fs (a folder)
#      and s3 (bucket repo on s3s-fs). For fs→fs (a→fs), S3→fs (s→fs) and S3→S3
#      (s→s3), ROUNDS rounds, alternating which goes first: `milvault backup create`
#      through the CLI, timed until the job ends, against `rclone copy --files-from`
#      of exactly the source keys the backup's manifest lists (same concurrency: 16
#      transfers; S3→S3 is one endpoint, so rclone copies server-side).
#   4. ROUNDS rounds of `milvault restore` (the last fs→fs backup into a, under a
#      suffix; optionally the last S3→S3 one too, also into a) against bench_import: Milvus's own
#      Import(backup=true) of the same files, staged beforehand (untimed), one import
#      per partition carrying all its segments, waited for like the server does.
#   5. Peak RSS (VmHWM, reset through /proc/PID/clear_refs before each backup) of
#      milvault-server during every 1.2 GiB backup and during a backup of ~4.2 GiB
#      (cluster a after bench_load adds BIG_GIB more).
#   6. ListBackups / GetJob p50/p99 under 64 concurrent SDK clients (bench_rpc_load)
#      while a backup runs, with LISTED more small backups in the repository: once
#      with each client pausing 100 ms after each pair of calls, once back to back.
#   7. A second backup of the unchanged cluster a with `--base latest` (incremental):
#      bytes it copied (manifest summary) and its time against the full backup's.
# Prints the table and writes bench-results/<UTC timestamp>.json (raw figures of
# every round, medians, ratios, targets). Everything it started (processes, network
# namespaces, data) is stopped and removed at exit, also on failure or Ctrl-C (keep
# it with MILVAULT_BENCH_KEEP=1); the logs of a failed run are kept as
# bench-results/failed-logs-<stamp>.tgz.
#
# Environment (defaults; --quick sets ROUNDS=2 SCALE=0.08 BIG_GIB=0.25 LISTED=5):
#   MILVAULT_BENCH_DIR=/work/bench-data  all data (Milvus, S3 folder, repositories)
#   MILVAULT_BENCH_ROUNDS=3              rounds per comparison (medians reported)
#   MILVAULT_BENCH_SCALE=1               size of the main data set (1 ≈ 1.2 GiB)
#   MILVAULT_BENCH_BIG_GIB=3             GiB added to cluster a for the large backup
#   MILVAULT_BENCH_CLIENTS=64            concurrent clients of the RPC latency run
#   MILVAULT_BENCH_LISTED=100            small backups made first, so that ListBackups
#                                        returns that many more
#   MILVAULT_BENCH_THINK_MS="100 0"      one RPC latency run per value: each client's
#                                        pause after a ListBackups+GetJob pair (0: back
#                                        to back, i.e. saturation)
#   MILVAULT_BENCH_RESTORE=fs            repositories the restore comparison restores
#                                        from into cluster a: "fs" (the fs→fs backup),
#                                        "s3" (the S3→S3 one), or "fs s3"
#   MILVAULT_BENCH_KEEP=0                1: leave services and data for inspection
#   MILVAULT_BENCH_SKIP_BUILD=0          1: use the release binaries already built
#   MILVAULT_BENCH_NET_A=10.91.0         /24 of namespace mvbench-a (.1 host, .2 netns)
#   MILVAULT_BENCH_NET_S=10.92.0         /24 of namespace mvbench-s
#   MILVAULT_BENCH_S3_LOG=error          RUST_LOG of s3s-fs (e.g. s3s_fs=debug: one line
#                                        per object or part written)
#   CARGO_TARGET_DIR                     build directory (default <repo>/target)
# Needs root (network namespaces), ~4 × (1 + BIG_GIB/3) GiB of free disk at most, and
# is not part of .ci/run.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
export MILVAULT_LOG_TAG=bench
REPO="$MILVAULT_REPO_ROOT"

QUICK=0 REV=""
while (($#)); do
  arg="$1"
  shift
  case "$arg" in
    --quick) QUICK=1 ;;
    --rev)
      (($#)) || die "--rev needs a commit"
      REV="$1"
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $arg (see --help)" ;;
  esac
done
if ((QUICK)); then
  : "${MILVAULT_BENCH_ROUNDS:=2}" "${MILVAULT_BENCH_SCALE:=0.08}" "${MILVAULT_BENCH_BIG_GIB:=0.25}"
  : "${MILVAULT_BENCH_LISTED:=5}"
fi

D="${MILVAULT_BENCH_DIR:-/work/bench-data}"
ROUNDS="${MILVAULT_BENCH_ROUNDS:-3}"
SCALE="${MILVAULT_BENCH_SCALE:-1}"
BIG_GIB="${MILVAULT_BENCH_BIG_GIB:-3}"
CLIENTS="${MILVAULT_BENCH_CLIENTS:-64}"
LISTED="${MILVAULT_BENCH_LISTED:-100}"
THINK_MS="${MILVAULT_BENCH_THINK_MS:-100 0}"
RESTORE_FROM="${MILVAULT_BENCH_RESTORE:-fs}"
KEEP="${MILVAULT_BENCH_KEEP:-0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
REL="$CARGO_TARGET_DIR/release"
S3FS_VERSION=0.14.1

# Network: one /24 per namespace; host end .1, namespace end .2.
# (10.97-10.99 are taken by the test services and the fault tests.)
NET_A="${MILVAULT_BENCH_NET_A:-10.91.0}" NET_S="${MILVAULT_BENCH_NET_S:-10.92.0}"
A_NETNS=mvbench-a A_VETH_HOST=mvb-a-host A_VETH_NS=mvb-a-ns A_HOST_IP="$NET_A.1" A_IP="$NET_A.2"
S_NETNS=mvbench-s S_VETH_HOST=mvb-s-host S_VETH_NS=mvb-s-ns S_HOST_IP="$NET_S.1" S_IP="$NET_S.2"
S3_PORT=9100
S3_ENDPOINT="http://$S_HOST_IP:$S3_PORT"
S3_KEY=minioadmin S3_SECRET=minioadmin S3_REGION=us-east-1
S_BUCKET=milvus-s S_ROOT=files REPO_BUCKET=repo
SERVER_PORT=50071
ENDPOINT="http://127.0.0.1:$SERVER_PORT"
A_ADDR="http://$A_IP:19530" S_ADDR="http://$S_IP:19530"
CURL=(curl -sf --noproxy '*' --max-time 5)

RESULTS="$D/results.jsonl" # one JSON object per measurement
SERVER_PID=""

# ------------------------------------------------------------ helpers ------
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
record() { printf '%s\n' "$1" >>"$RESULTS"; }

# launch NAME CMD...: CMD in a new session, output to $D/logs/NAME.log, its process
# group id in $D/pids/NAME (as scripts/services.sh does).
launch() {
  local name="$1" pid
  shift
  (cd "$D" && exec setsid "$@" >"$D/logs/$name.log" 2>&1 </dev/null) &
  pid=$!
  # Stopped by process group at exit; no job-status line from bash when it dies.
  disown "$pid"
  echo "$pid" >"$D/pids/$name"
  for _ in $(seq 50); do
    [[ "$(ps -o pgid= -p "$pid" | tr -d ' ')" == "$pid" ]] && return 0
    sleep 0.1
  done
  die "$name did not become a process-group leader"
}

stop_group() {
  local file="$D/pids/$1" pgid
  [[ -f "$file" ]] || return 0
  pgid="$(cat "$file")"
  rm -f "$file"
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  for _ in $(seq 30); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

netns_up() { # NETNS VETH_HOST VETH_NS HOST_IP NS_IP
  [[ -z "$(ip -4 -o addr show to "$4/24")" ]] || die "$4/24 is already used on this host"
  ! ip netns list | awk '{print $1}' | grep -qxF "$1" \
    || die "network namespace $1 exists (a running or failed benchmark?): ip netns delete $1"
  ip netns add "$1"
  ip netns exec "$1" ip link set lo up
  ip link add "$2" type veth peer name "$3"
  ip link set "$3" netns "$1"
  ip addr add "$4/24" dev "$2"
  ip link set "$2" up
  ip netns exec "$1" ip addr add "$5/24" dev "$3"
  ip netns exec "$1" ip link set "$3" up
}

netns_down() { # NETNS VETH_HOST
  local pid
  if ip netns list | awk '{print $1}' | grep -qxF "$1"; then
    for pid in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns delete "$1"
  fi
  ip link delete "$2" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  if [[ "$KEEP" == 1 ]]; then
    log "MILVAULT_BENCH_KEEP=1: services and $D left running; stop them with: kill -- -PGID for each $D/pids/*, ip netns delete $A_NETNS $S_NETNS"
    exit "$rc"
  fi
  log "cleaning up"
  for n in milvault-server milvus-a milvus-s s3s-fs; do stop_group "$n"; done
  netns_down "$A_NETNS" "$A_VETH_HOST"
  netns_down "$S_NETNS" "$S_VETH_HOST"
  if ((rc != 0)) && [[ -d "$D/logs" ]]; then
    mkdir -p "$REPO/bench-results"
    tar -czf "$REPO/bench-results/failed-logs-$STAMP.tgz" -C "$D" logs 2>/dev/null \
      && log "logs of the failed run: bench-results/failed-logs-$STAMP.tgz"
  fi
  rm -rf "$D"
  exit "$rc"
}

yaml_get() { # FILE SECTION KEY (two levels, as scripts/services.sh)
  awk -v s="$2:" -v k="  $3:" '
    $0 == s { in_s = 1; next }
    in_s && /^[^ #]/ { in_s = 0 }
    in_s && index($0, k) == 1 { sub(/^[^:]*: */, ""); sub(/ *#.*/, ""); print; exit }
  ' "$1"
}

cli() { "$REL/milvault" --endpoint "$ENDPOINT" "$@"; }

# Peak RSS of milvault-server: reset the high-water mark, later read it (kB).
rss_reset() { echo 5 >"/proc/$SERVER_PID/clear_refs"; }
rss_peak_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status"; }

# Files a backup's manifest lists: its source keys, one a line.
manifest_keys() {
  jq -r '.collections[]?.segments[]? | (.insertLogs[]?, .deltaLogs[]?, .statsLogs[]?) | .sourceKey' "$1"
}
manifest_bytes() {
  jq '[.collections[]?.segments[]? | (.insertLogs[]?, .deltaLogs[]?, .statsLogs[]?) | .sizeBytes | tonumber] | add // 0' "$1"
}

repo_dir() { # REPOSITORY → its folder on this machine
  case "$1" in
    fs) echo "$D/repo-fs" ;;
    s3) echo "$D/s3/$REPO_BUCKET" ;;
  esac
}

rclone_() { env -u AWS_CA_BUNDLE RCLONE_CONFIG="$D/rclone.conf" rclone "$@"; }

# ------------------------------------------------------------- phases ------
prepare_tools() {
  # Not setup.sh itself: it may reinstall what the running test services use.
  [[ -x "$MILVAULT_VENV/bin/python" && -x "$MILVAULT_MILVUS_RUNTIME/bin/milvus" ]] \
    || die "Milvus 2.3.5 runtime missing: run scripts/setup.sh first"
  if [[ "$("$MILVAULT_TOOLS/bin/s3s-fs" --version 2>/dev/null)" != *"$S3FS_VERSION"* ]]; then
    log "cargo install s3s-fs $S3FS_VERSION (newer versions need a newer rustc)"
    # Its own temporary build directory (removed by cargo), not the workspace's.
    env -u CARGO_TARGET_DIR cargo install s3s-fs --version "$S3FS_VERSION" --features binary \
      --locked --root "$MILVAULT_TOOLS"
  fi
  command -v rclone >/dev/null || die "rclone missing (scripts/setup.sh installs it)"
  command -v jq >/dev/null || die "jq missing (scripts/setup.sh installs it)"
  if [[ "${MILVAULT_BENCH_SKIP_BUILD:-0}" == 1 ]]; then
    log "MILVAULT_BENCH_SKIP_BUILD=1: using the binaries in $REL as they are"
    return
  fi
  log "release build of $SRC ($COMMIT) into $CARGO_TARGET_DIR"
  (cd "$SRC" && cargo build --release -q -p milvault-server -p milvault \
    && cargo build --release -q -p milvault-tests \
      --bin bench_load --bin bench_import --bin bench_rpc_load)
}

start_services() {
  local dir which
  mkdir -p "$D/s3/$S_BUCKET" "$D/s3/$REPO_BUCKET" "$D/repo-fs" "$D/state" \
    "$D/rclone-dst" "$D/logs" "$D/pids"
  netns_up "$A_NETNS" "$A_VETH_HOST" "$A_VETH_NS" "$A_HOST_IP" "$A_IP"
  netns_up "$S_NETNS" "$S_VETH_HOST" "$S_VETH_NS" "$S_HOST_IP" "$S_IP"
  log "s3s-fs on $S3_ENDPOINT over $D/s3"
  RUST_LOG="${MILVAULT_BENCH_S3_LOG:-error}" launch s3s-fs "$MILVAULT_TOOLS/bin/s3s-fs" --host "$S_HOST_IP" --port "$S3_PORT" \
    --access-key "$S3_KEY" --secret-key "$S3_SECRET" "$D/s3"
  for which in a s; do
    dir="$D/milvus-$which"
    mkdir -p "$dir"
    # Both: a short rocksmq retention (the WAL would otherwise keep a copy of every
    # inserted byte for days) and a short GC delay, so dropped restore copies leave
    # the disk within minutes. Neither touches what is measured.
    local cmd=("$MILVAULT_VENV/bin/python" "$REPO/scripts/lib/milvus_launch.py"
      --data "$dir" --bin "$MILVAULT_MILVUS_RUNTIME/bin" --metrics-port 9091
      --set rocksmq.retentionTimeInMinutes=10 --set rocksmq.retentionSizeInMB=512
      --set dataCoord.gc.interval=60 --set dataCoord.gc.dropTolerance=60)
    if [[ "$which" == a ]]; then
      cmd=(ip netns exec "$A_NETNS" "${cmd[@]}" --set common.storageType=local)
    else
      cmd=(ip netns exec "$S_NETNS" "${cmd[@]}" --set common.storageType=minio
        --set "minio.address=$S_HOST_IP" --set "minio.port=$S3_PORT"
        --set "minio.accessKeyID=$S3_KEY" --set "minio.secretAccessKey=$S3_SECRET"
        --set "minio.bucketName=$S_BUCKET" --set "minio.rootPath=$S_ROOT"
        --set minio.useSSL=false --set "minio.region=$S3_REGION")
    fi
    log "starting milvus-$which"
    launch "milvus-$which" "${cmd[@]}"
  done
  local deadline=$((SECONDS + 240)) ip
  for which in a s; do
    ip="$A_IP"
    [[ "$which" == s ]] && ip="$S_IP"
    until port_open "$ip" 19530 && [[ "$("${CURL[@]}" "http://$ip:9091/healthz" 2>/dev/null)" == *OK* ]]; do
      kill -0 -- "-$(cat "$D/pids/milvus-$which")" 2>/dev/null || {
        tail -n 30 "$D/logs/milvus-$which.log" >&2
        die "milvus-$which exited"
      }
      ((SECONDS < deadline)) || die "milvus-$which not ready after 240 s"
      sleep 1
    done
    log "milvus-$which ready"
  done
  A_DATA="$(yaml_get "$D/milvus-a/configs/milvus.yaml" localStorage path)"
  A_DATA="${A_DATA%/}"
  [[ "$A_DATA" == /* ]] || die "could not read localStorage.path of milvus-a"
  S_DATA="$D/s3/$S_BUCKET/$S_ROOT" # where s3s-fs keeps Milvus s's objects
}

segment_bytes() { # DIR: bytes of segment files under a storage root
  local d="$1"
  du -sbc "$d"/insert_log "$d"/delta_log "$d"/stats_log 2>/dev/null | awk '/total$/ { print $1 }'
}

load_data() {
  log "loading the main data set into a and s (scale $SCALE)"
  "$REL/bench_load" main "$A_ADDR" "$SCALE" >"$D/load-a.json" 2>"$D/logs/load-a.log" &
  local pa=$!
  "$REL/bench_load" main "$S_ADDR" "$SCALE" >"$D/load-s.json" 2>"$D/logs/load-s.log" &
  local ps=$!
  wait "$pa" || { cat "$D/logs/load-a.log" >&2; die "loading a failed"; }
  wait "$ps" || { cat "$D/logs/load-s.log" >&2; die "loading s failed"; }
  log "loaded: a $(cat "$D/load-a.json")"
  log "loaded: s $(cat "$D/load-s.json")"
  record "$(jq -c '{kind: "load", cluster: "a"} + .' "$D/load-a.json")"
  record "$(jq -c '{kind: "load", cluster: "s"} + .' "$D/load-s.json")"
}

start_server() {
  cat >"$D/milvault.toml" <<EOF
[server]
listen = "127.0.0.1:$SERVER_PORT"
state_dir = "$D/state"

[clusters.a]
address = "$A_ADDR"
management = "http://$A_IP:9091"
username = "root"
password = "Milvus"
storage = { scheme = "fs", root = "$A_DATA" }

[clusters.s]
address = "$S_ADDR"
management = "http://$S_IP:9091"
username = "root"
password = "Milvus"
storage = { scheme = "s3", endpoint = "$S3_ENDPOINT", bucket = "$S_BUCKET", root = "$S_ROOT", region = "$S3_REGION", access_key_id = "$S3_KEY", secret_access_key = "$S3_SECRET" }

[repositories.fs]
storage = { scheme = "fs", root = "$D/repo-fs" }

[repositories.s3]
storage = { scheme = "s3", endpoint = "$S3_ENDPOINT", bucket = "$REPO_BUCKET", root = "/", region = "$S3_REGION", access_key_id = "$S3_KEY", secret_access_key = "$S3_SECRET" }

[limits]
copy_concurrency = 16
import_concurrency = 4
EOF
  cat >"$D/rclone.conf" <<EOF
[s3]
type = s3
provider = Other
endpoint = $S3_ENDPOINT
access_key_id = $S3_KEY
secret_access_key = $S3_SECRET
region = $S3_REGION
force_path_style = true
EOF
  log "starting milvault-server on $ENDPOINT"
  launch milvault-server "$REL/milvault-server" --config "$D/milvault.toml" --log-filter warn
  SERVER_PID="$(cat "$D/pids/milvault-server")"
  for _ in $(seq 100); do
    port_open 127.0.0.1 "$SERVER_PORT" && cli server-info >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$D/logs/milvault-server.log" >&2; die "milvault-server exited"; }
    sleep 0.2
  done
  die "milvault-server not ready"
}

# milvault_backup NAME CLUSTER REPOSITORY [EXTRA ARGS...]: the CLI's backup, timed
# until the job ends; prints seconds. The server's peak RSS is reset first
# (rss_peak_kb reads it afterwards).
# stamped LOG PHASES T0 CMD...: runs the CLI command CMD with its progress lines
# time-stamped into LOG; the seconds from T0 to each phase's first line go to PHASES
# as JSON. Fails when CMD fails.
stamped() {
  local log="$1" phases="$2" t0="$3"
  shift 3
  if ! "$@" 2>&1 | while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$log" \
    || ((PIPESTATUS[0] != 0)); then
    tail -n 20 "$log" >&2
    return 1
  fi
  # "<time> [<job id>] <phase>[ (<detail>)]: <progress>" -> {"<phase>": seconds, ...}
  awk -v t0="$t0" '$2 ~ /^\[/ && $3 ~ /^[a-z_ ]+/ {
      p = $3; sub(/:$/, "", p)
      if (!(p in seen)) { seen[p] = 1; printf "%s\"%s\":%.3f", (n++ ? "," : "{"), p, $1 - t0 }
    } END { print (n ? "}" : "{}") }' "$log" >"$phases"
}

# The CLI's progress lines are time-stamped into $D/logs/backup-NAME.log, and the
# seconds from the start to each phase's first line go to $D/phases-NAME.json.
milvault_backup() {
  local name="$1" cluster="$2" repo="$3" t
  shift 3
  rss_reset
  t="$(now)"
  stamped "$D/logs/backup-$name.log" "$D/phases-$name.json" "$t" \
    cli backup create "$name" --cluster "$cluster" --repository "$repo" "$@" \
    || die "backup $name failed"
  elapsed "$t"
}

delete_backup() { # NAME REPOSITORY
  cli backup delete "$1" --repository "$2" >>"$D/logs/cli.log" 2>&1 || die "deleting backup $1 failed"
}

# rclone_copy PAIR LIST: copies the listed keys the way PAIR says, prints seconds.
rclone_copy() {
  local pair="$1" list="$2" src dst t
  case "$pair" in
    fs-fs) src="$A_DATA" dst="$D/rclone-dst/$pair" ;;
    s3-fs) src="s3:$S_BUCKET/$S_ROOT/" dst="$D/rclone-dst/$pair" ;;
    s3-s3) src="s3:$S_BUCKET/$S_ROOT/" dst="s3:$REPO_BUCKET/rclone-dst/" ;;
  esac
  t="$(now)"
  rclone_ copy --files-from-raw "$list" --transfers 16 --checkers 16 "$src" "$dst" \
    >>"$D/logs/rclone.log" 2>&1 || { tail -n 20 "$D/logs/rclone.log" >&2; die "rclone $pair failed"; }
  elapsed "$t"
  rm -rf "$D/rclone-dst/$pair" "$D/s3/$REPO_BUCKET/rclone-dst"
}

declare -A PAIR_CLUSTER=([fs-fs]=a [s3-fs]=s [s3-s3]=s)
declare -A PAIR_REPO=([fs-fs]=fs [s3-fs]=fs [s3-s3]=s3)
declare -A LIST BYTES FILES KEEP_BACKUP

backup_rounds() {
  local r pair name secs rss order tool manifest
  for ((r = 1; r <= ROUNDS; r++)); do
    for pair in fs-fs s3-fs s3-s3; do
      name="r$r-$pair"
      # Alternate: milvault first in odd rounds (round 1 makes the file list rclone
      # copies), rclone first in even ones.
      order="milvault rclone"
      if ((r % 2 == 0)); then order="rclone milvault"; fi
      for tool in $order; do
        if [[ "$tool" == rclone ]]; then
          secs="$(rclone_copy "$pair" "${LIST[$pair]}")"
          record "{\"kind\":\"backup\",\"pair\":\"$pair\",\"round\":$r,\"tool\":\"rclone\",\"seconds\":$secs,\"bytes\":${BYTES[$pair]},\"files\":${FILES[$pair]}}"
          log "round $r $pair: rclone $secs s"
          continue
        fi
        secs="$(milvault_backup "$name" "${PAIR_CLUSTER[$pair]}" "${PAIR_REPO[$pair]}")"
        rss="$(rss_peak_kb)"
        manifest="$(repo_dir "${PAIR_REPO[$pair]}")/backups/$name/manifest.json"
        [[ -f "$manifest" ]] || die "no manifest at $manifest"
        manifest_keys "$manifest" | sort >"$D/list-$name"
        if [[ -z "${LIST[$pair]:-}" ]]; then
          LIST[$pair]="$D/list-$pair"
          cp "$D/list-$name" "${LIST[$pair]}"
          BYTES[$pair]="$(manifest_bytes "$manifest")"
          FILES[$pair]="$(wc -l <"${LIST[$pair]}")"
        elif ! cmp -s "$D/list-$name" "${LIST[$pair]}"; then
          log "WARNING: round $r $pair backed up other files than round 1"
        fi
        record "{\"kind\":\"backup\",\"pair\":\"$pair\",\"round\":$r,\"tool\":\"milvault\",\"seconds\":$secs,\"rss_peak_kb\":$rss,\"bytes\":$(manifest_bytes "$manifest"),\"files\":$(wc -l <"$D/list-$name"),\"phase_start_s\":$(cat "$D/phases-$name.json")}"
        log "round $r $pair: milvault $secs s, peak RSS $((rss / 1024)) MiB"
      done
      # Keep the last round's a->fs and s->s3 backups (restores, second backup).
      if ((r == ROUNDS)) && [[ "$pair" == fs-fs || "$pair" == s3-s3 ]]; then
        KEEP_BACKUP[$pair]="$name"
      else
        delete_backup "$name" "${PAIR_REPO[$pair]}"
      fi
    done
  done
}

restore_rounds() {
  local r which order tool secs t out pair repo name manifest stage root addr
  # Always into cluster a (local storage): s3s-fs cannot hold restore staging keys
  # (its sidecar file for a key is named after the key in base64, and a staged key of
  # ~190 bytes makes that name longer than the 255 bytes Linux allows: PutObject fails
  # with "File name too long"), and moto is too slow to measure against.
  for repo in $RESTORE_FROM; do
    which=a addr="$A_ADDR" stage="$A_DATA" root="$A_DATA/"
    if [[ "$repo" == fs ]]; then pair=fs-fs; else pair=s3-s3; fi
    name="${KEEP_BACKUP[$pair]}"
    manifest="$(repo_dir "$repo")/backups/$name/manifest.json"
    for ((r = 1; r <= ROUNDS; r++)); do
      order="milvault raw"
      if ((r % 2 == 0)); then order="raw milvault"; fi
      for tool in $order; do
        if [[ "$tool" == milvault ]]; then
          t="$(now)"
          stamped "$D/logs/restore-$repo-$r.log" "$D/phases-restore-$repo-$r.json" "$t" \
            cli restore "$name" --cluster "$which" --repository "$repo" --suffix _mr \
            || die "restore of $name into $which failed"
          secs="$(elapsed "$t")"
          "$REL/bench_load" drop "$addr" _mr 2>>"$D/logs/drop.log"
          record "{\"kind\":\"restore\",\"repository\":\"$repo\",\"cluster\":\"$which\",\"round\":$r,\"tool\":\"milvault\",\"seconds\":$secs,\"bytes\":$(manifest_bytes "$manifest"),\"phase_start_s\":$(cat "$D/phases-restore-$repo-$r.json")}"
          log "restore $repo -> $which round $r: milvault $secs s"
        else
          out="$("$REL/bench_import" "$addr" "$manifest" "$(repo_dir "$repo")" "$stage" "$root" _ri 4 partition \
            2>>"$D/logs/import.log")" || { tail -n 20 "$D/logs/import.log" >&2; die "raw import into $which failed"; }
          "$REL/bench_load" drop "$addr" _ri 2>>"$D/logs/drop.log"
          record "$(jq -c --arg c "$which" --arg repo "$repo" --argjson r "$r" \
            '{kind: "restore", repository: $repo, cluster: $c, round: $r, tool: "raw_import"} + .' <<<"$out")"
          log "restore $repo -> $which round $r: raw import $(jq .seconds <<<"$out") s"
        fi
      done
    done
  done
}

# Bytes a backup copied and bytes it holds in all, from its manifest's summary (proto3
# JSON leaves zeros out: copied = all - referenced).
copied_bytes() { jq '(.summary.sizeBytes // 0 | tonumber) - (.summary.referencedBytes // 0 | tonumber)' "$1"; }
size_bytes() { jq '.summary.sizeBytes // 0 | tonumber' "$1"; }

second_backup() {
  local first="${KEEP_BACKUP[fs-fs]}" secs m1 m2
  log "second backup of unchanged a (--base latest)"
  secs="$(milvault_backup second-a a fs --base latest)"
  m1="$D/repo-fs/backups/$first/manifest.json"
  m2="$D/repo-fs/backups/second-a/manifest.json"
  record "$(jq -nc --argjson s "$secs" --argjson c "$(copied_bytes "$m2")" \
    --argjson t "$(size_bytes "$m2")" --argjson c1 "$(copied_bytes "$m1")" \
    --argjson w "$(du -sb "$D/repo-fs/backups/second-a" | cut -f1)" \
    --argjson rss "$(rss_peak_kb)" --argjson ph "$(cat "$D/phases-second-a.json")" \
    '{kind: "second_backup", mode: "incremental", seconds: $s, copied_bytes: $c,
      size_bytes: $t, first_copied_bytes: $c1, folder_bytes: $w, rss_peak_kb: $rss,
      phase_start_s: $ph}')"
  log "second backup: $secs s, copied $(copied_bytes "$m2") of $(size_bytes "$m2") bytes"
}

rpc_latency() {
  local job out i t
  # A listing with many backups on the page: LISTED small backups of one tiny collection.
  "$REL/bench_load" tiny "$A_ADDR" >/dev/null 2>>"$D/logs/load-tiny.log" \
    || { cat "$D/logs/load-tiny.log" >&2; die "creating bench_tiny failed"; }
  log "RPC latency: $LISTED small backups first, so that a listing has that many"
  t="$(now)"
  for ((i = 1; i <= LISTED; i++)); do
    cli backup create "list-$i" --cluster a --repository fs --collections default.bench_tiny \
      >>"$D/logs/cli.log" 2>&1 || { tail -n 20 "$D/logs/cli.log" >&2; die "backup list-$i failed"; }
  done
  if ((LISTED > 0)); then
    record "{\"kind\":\"small_backups\",\"count\":$LISTED,\"seconds\":$(elapsed "$t")}"
  fi
  local think backups
  for think in $THINK_MS; do
    job="$(cli backup create "rpc-$think" --cluster a --repository fs --no-wait 2>>"$D/logs/cli.log")"
    [[ -n "$job" ]] || die "could not start the backup for the RPC latency run"
    log "RPC latency: $CLIENTS clients (pause $think ms between calls) while backup job $job runs"
    out="$("$REL/bench_rpc_load" "$ENDPOINT" fs "$job" "$CLIENTS" 900 "$think")"
    cli job watch "$job" >>"$D/logs/cli.log" 2>&1 || die "backup rpc-$think failed"
    backups="$(find "$D/repo-fs/backups" -mindepth 1 -maxdepth 1 -type d | wc -l)"
    record "$(jq -c --argjson n "$backups" '{kind: "rpc", backups_in_repository: $n} + .' <<<"$out")"
    log "RPC latency: $out"
    delete_backup "rpc-$think" fs
  done
}

big_backup() {
  log "adding $BIG_GIB GiB to a for the large backup"
  "$REL/bench_load" extra "$A_ADDR" "$BIG_GIB" >"$D/load-big.json" 2>"$D/logs/load-big.log" \
    || { cat "$D/logs/load-big.log" >&2; die "loading the extra data failed"; }
  local secs rss manifest
  secs="$(milvault_backup big-a a fs)"
  rss="$(rss_peak_kb)"
  manifest="$D/repo-fs/backups/big-a/manifest.json"
  record "{\"kind\":\"big_backup\",\"seconds\":$secs,\"rss_peak_kb\":$rss,\"bytes\":$(manifest_bytes "$manifest"),\"files\":$(manifest_keys "$manifest" | wc -l),\"phase_start_s\":$(cat "$D/phases-big-a.json")}"
  log "large backup: $(($(manifest_bytes "$manifest") >> 20)) MiB in $secs s, peak RSS $((rss / 1024)) MiB"
  delete_backup big-a fs
}

# ------------------------------------------------------------ summary ------
summarize() {
  local out="$REPO/bench-results/$STAMP.json"
  mkdir -p "$REPO/bench-results"
  jq -s --arg stamp "$STAMP" --arg host "$(uname -n)" --arg cpus "$(nproc)" \
    --arg load_start "$LOAD_START" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --argjson rounds "$ROUNDS" --arg commit "$COMMIT" \
    --arg dirty "$DIRTY" '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def secs(f): [.[] | select(f) | .seconds] | median;
    . as $all
    | [ "fs-fs", "s3-fs", "s3-s3" ] as $pairs
    | ($all | map(select(.kind == "backup" and .tool == "milvault")) | map(.rss_peak_kb) | max) as $rssmax
    # The first fs -> fs backup runs on a fresh server, like the large one (which
    # follows a restart): the like-for-like pair for "flat".
    | ($all | map(select(.kind == "backup" and .tool == "milvault" and .pair == "fs-fs"))
        | min_by(.round) | .rss_peak_kb) as $rss1
    | ($all | map(select(.kind == "big_backup")) | first) as $big
    | ($all | map(select(.kind == "second_backup")) | first) as $second
    | ($all | map(select(.kind == "rpc"))) as $rpc
    | {
        stamp: $stamp, host: $host, cpus: ($cpus | tonumber), commit: $commit,
        uncommitted_tracked_files: ($dirty | tonumber),
        loadavg_start: $load_start, loadavg_end: $load_end, rounds: $rounds,
        backup: [ $pairs[] as $p
          | { pair: $p,
              bytes: ([$all[] | select(.kind == "backup" and .pair == $p)] | first | .bytes),
              files: ([$all[] | select(.kind == "backup" and .pair == $p)] | first | .files),
              milvault_s: ($all | secs(.kind == "backup" and .pair == $p and .tool == "milvault")),
              rclone_s: ($all | secs(.kind == "backup" and .pair == $p and .tool == "rclone")) }
          | . + { ratio: (.milvault_s / .rclone_s) } ],
        restore: [ $all | map(select(.kind == "restore") | .repository) | unique[] as $c
          | { repository: $c,
              bytes: ([$all[] | select(.kind == "restore" and .repository == $c and .tool == "milvault")] | first | .bytes),
              imports: ([$all[] | select(.kind == "restore" and .repository == $c and .tool == "raw_import")] | first | .imports),
              segments: ([$all[] | select(.kind == "restore" and .repository == $c and .tool == "raw_import")] | first | .segments),
              milvault_s: ($all | secs(.kind == "restore" and .repository == $c and .tool == "milvault")),
              raw_import_s: ($all | secs(.kind == "restore" and .repository == $c and .tool == "raw_import")) }
          | . + { ratio: (.milvault_s / .raw_import_s) } ],
        rss: { backup_1_bytes: ([$all[] | select(.kind == "backup" and .tool == "milvault" and .pair == "fs-fs") | .bytes] | max),
               peak_1_mb: ($rss1 * 1024 / 1e6),
               peak_any_1_mb: ($rssmax * 1024 / 1e6),
               backup_4_bytes: $big.bytes, peak_4_mb: ($big.rss_peak_kb * 1024 / 1e6),
               growth: ($big.rss_peak_kb / $rss1) },
        rpc: $rpc,
        second_backup: ($second + {
          first_s: ($all | secs(.kind == "backup" and .pair == "fs-fs" and .tool == "milvault")) }
          | . + { bytes_fraction: (.copied_bytes / .first_copied_bytes), time_fraction: (.seconds / .first_s) }),
        measurements: $all
      }' "$RESULTS" >"$out"
  RESULT_JSON="$out"
}

# The table: a title line, then TSV rows (header first) on stdout.
table_rows() {
  jq -r '
    def f(n): if n == null then "-" else (n * 100 | round) / 100 | tostring end;
    def f1(n): if n == null then "-" else (n * 10 | round) / 10 | tostring end;
    def f4(n): if n == null then "-" else (n * 10000 | round) / 10000 | tostring end;
    def gib(b): if b == null then "-" elif b >= 1073741824 then f(b / 1073741824) + " GiB"
      elif b >= 1048576 then f1(b / 1048576) + " MiB" else f1(b / 1024) + " KiB" end;
    def pct(x): f1((x - 1) * 100) + "%";
    def verdict(ok; miss): if ok then "met" else "MISSED " + miss end;
    . as $r
    | "Milvault benchmark \(.stamp) at \(.commit)\(if .uncommitted_tracked_files > 0 then " + \(.uncommitted_tracked_files) uncommitted files" else "" end) on \(.host): \(.cpus) cores, Milvus 2.3.5, medians of \(.rounds) rounds, load average \(.loadavg_start) -> \(.loadavg_end)",
      (["measure", "milvault", "baseline", "ratio", "target", "verdict"] | @tsv),
      (.backup[] | [ "backup \(.pair | sub("s3"; "S3"; "g") | sub("-"; " -> ")) (\(gib(.bytes)), \(.files) files)",
          "\(f(.milvault_s)) s", "rclone \(f(.rclone_s)) s", f(.ratio), "<= 1.05",
          verdict(.ratio <= 1.05; "by " + pct(.ratio / 1.05)) ] | @tsv),
      (.restore[] | [ "restore \(if .repository == "fs" then "fs" else "S3" end) repository -> fs Milvus (\(gib(.bytes)), \(.segments) segments)",
          "\(f(.milvault_s)) s", "Milvus import \(f(.raw_import_s)) s (\(.imports) tasks)", f(.ratio), "<= 1.15",
          verdict(.ratio <= 1.15; "by " + pct(.ratio / 1.15)) ] | @tsv),
      ([ "peak RSS, fs -> fs backup of \(gib(.rss.backup_1_bytes)), fresh server", "\(f1(.rss.peak_1_mb)) MB", "-", "-", "< 150 MB",
          verdict(.rss.peak_1_mb < 150; "by " + pct(.rss.peak_1_mb / 150)) ] | @tsv),
      ([ "peak RSS, any ~1 GiB backup (all paths and rounds)", "\(f1(.rss.peak_any_1_mb)) MB", "-", "-", "< 150 MB",
          verdict(.rss.peak_any_1_mb < 150; "by " + pct(.rss.peak_any_1_mb / 150)) ] | @tsv),
      ([ "peak RSS, fs -> fs backup of \(gib(.rss.backup_4_bytes))", "\(f1(.rss.peak_4_mb)) MB", "-",
          "x\(f(.rss.growth)) vs \(gib(.rss.backup_1_bytes))", "< 150 MB, flat (<= x1.2)",
          verdict(.rss.peak_4_mb < 150 and .rss.growth <= 1.2;
            (if .rss.peak_4_mb >= 150 then "by " + pct(.rss.peak_4_mb / 150) + " " else "" end)
            + (if .rss.growth > 1.2 then "grows x" + f(.rss.growth) else "" end)) ] | @tsv),
      (.rpc[] as $p | ["ListBackups", "GetJob"][] as $m
        | ($p[if $m == "ListBackups" then "list_backups" else "get_job" end]) as $s
        | [ "\($m) p50 / p99, \($p.clients) clients \(if ($p.think_ms // 0) > 0 then "pausing \($p.think_ms) ms" else "back to back" end) (\($p.list_backups.calls_per_sec * 2 | round) calls/s), backup running"
              + (if $m == "ListBackups" then ", \($p.backups_in_repository) backups" else "" end),
            "\(f($s.p50_ms)) / \(f($s.p99_ms)) ms", "-", "-", "p99 < 5 ms",
            verdict($s.p99_ms < 5 and $s.errors == 0;
              (if $s.p99_ms >= 5 then "by " + pct($s.p99_ms / 5) else "" end)
              + (if $s.errors > 0 then " \($s.errors) errors" else "" end)) ] | @tsv),
      (.second_backup as $s
        | ([ "second backup, unchanged data (\($s.mode)): bytes copied", "\(gib($s.copied_bytes))",
            "first \(gib($s.first_copied_bytes))", f4($s.bytes_fraction), "< 0.01",
            verdict($s.bytes_fraction < 0.01; "x\(f($s.bytes_fraction / 0.01))") ] | @tsv),
          ([ "second backup, unchanged data (\($s.mode)): time", "\(f($s.seconds)) s",
            "first \(f($s.first_s)) s", f($s.time_fraction), "< 0.20",
            verdict($s.time_fraction < 0.2; "x\(f($s.time_fraction / 0.2))") ] | @tsv))
  ' "$RESULT_JSON"
}

# Prints the table aligned, and writes it as Markdown next to the JSON (for README.md).
print_table() {
  local rows md="${RESULT_JSON%.json}.md"
  rows="$(table_rows)"
  head -n 1 <<<"$rows"
  echo
  tail -n +2 <<<"$rows" | column -t -s $'\t'
  {
    head -n 1 <<<"$rows"
    echo
    tail -n +2 <<<"$rows" | awk -F'\t' '{
      line = "|"; for (i = 1; i <= NF; i++) line = line " " $i " |"; print line
      if (NR == 1) { line = "|"; for (i = 1; i <= NF; i++) line = line " --- |"; print line }
    }'
  } >"$md"
}

main() {
  ((EUID == 0)) || die "run as root (network namespaces)"
  STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
  LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -e "$D" ]]; then die "$D exists (a running or failed benchmark?): remove it first"; fi
  mkdir -p "$D/logs" "$D/pids"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [[ -n "$REV" ]]; then
    COMMIT="$(git -C "$REPO" rev-parse --short "$REV^{commit}")" || die "no commit $REV"
    DIRTY=0
    SRC="$D/src"
    mkdir -p "$SRC"
    git -C "$REPO" archive "$COMMIT" | tar -x -C "$SRC"
  else
    COMMIT="$(git -C "$REPO" rev-parse --short HEAD)"
    DIRTY="$(git -C "$REPO" status --porcelain --untracked-files=no | wc -l)"
    SRC="$REPO"
  fi
  prepare_tools
  start_services
  load_data
  log "segment data: a $(($(segment_bytes "$A_DATA") >> 20)) MiB, s $(($(segment_bytes "$S_DATA") >> 20)) MiB"
  start_server
  backup_rounds
  restore_rounds
  second_backup
  delete_backup second-a fs
  rpc_latency
  for k in "${!KEEP_BACKUP[@]}"; do delete_backup "${KEEP_BACKUP[$k]}" "${PAIR_REPO[$k]}"; done
  # A fresh server for the large backup, as for the first fs -> fs one.
  stop_group milvault-server
  start_server
  big_backup
  summarize
  echo
  print_table
  echo
  log "results: ${RESULT_JSON#"$REPO"/}"
}

main "$@"; exit $? # one line: bash reads no further (safe to edit this file while it runs)
