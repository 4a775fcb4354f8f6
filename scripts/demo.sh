#!/usr/bin/env bash
# The demo, from a fresh machine: start a real Milvus 2.3.5, fill demo collections,
# start milvault-server, back them up with the milvault CLI into a local folder,
# drop them, restore them, and check that every row came back bit for bit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

bash scripts/setup.sh
export PATH="$root/.tools/bin:$PATH"

echo "== building milvault"
cargo build --workspace --bins

demo=${MILVAULT_DEMO_DIR:-/tmp/milvault-demo}
rm -rf "$demo" && mkdir -p "$demo/repo" "$demo/state"

echo "== starting Milvus 2.3.5"
bash scripts/services.sh up a
# shellcheck disable=SC1090
source "${MILVAULT_SERVICES_DIR:-/tmp/milvault-services}/env"

server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  bash scripts/services.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

cat > "$demo/milvault.toml" <<TOML
[server]
listen = "127.0.0.1:50051"
state_dir = "$demo/state"

[clusters.demo]
address = "$MILVAULT_TEST_A_ADDR"
management = "$MILVAULT_TEST_A_MGMT"
storage = { scheme = "fs", root = "$MILVAULT_TEST_A_DATA" }

[repositories.local]
storage = { scheme = "fs", root = "$demo/repo" }
TOML

echo "== starting milvault-server (config $demo/milvault.toml)"
target/debug/milvault-server --config "$demo/milvault.toml" >"$demo/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check >/dev/null 2>&1 && break
  sleep 0.1
done
grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check

milvault=target/debug/milvault
data=target/debug/milvault-demo-data
collections=demo_all_types,demo_varchar_pk,demo_auto_ids,demo_empty

echo "== filling demo collections"
"$data" seed "$MILVAULT_TEST_A_ADDR" demo_
"$data" snapshot "$MILVAULT_TEST_A_ADDR" demo_ "$demo/before.json"

echo "== milvault backup create demo-backup"
"$milvault" server-info
"$milvault" backup create demo-backup --collections "$collections"
"$milvault" backup list
"$milvault" backup get demo-backup

echo "== dropping the collections"
"$data" drop "$MILVAULT_TEST_A_ADDR" demo_

echo "== milvault restore demo-backup"
"$milvault" restore demo-backup

echo "== verifying"
"$data" verify "$MILVAULT_TEST_A_ADDR" demo_ "$demo/before.json"
echo "demo finished: backup, drop, restore, every row verified"
