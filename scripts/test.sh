#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install what is missing, check
# formatting, lints and the API contract, build, start the real services
# (two Milvus 2.3.5, one on S3), and run every test with cargo-nextest.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

bash scripts/setup.sh
export PATH="$root/.tools/bin:$PATH"

echo "== format, API contract, lints"
cargo fmt --all -- --check
buf lint
# The released API is frozen in proto/baseline.binpb; changing it is deliberate.
buf breaking --against proto/baseline.binpb
cargo clippy --workspace --all-targets -- -D warnings

echo "== build"
cargo build --workspace --all-targets

echo "== services"
bash scripts/services.sh up
trap 'bash scripts/services.sh down >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1090
source "${MILVAULT_SERVICES_DIR:-/tmp/milvault-services}/env"

echo "== tests"
cargo nextest run --workspace --profile ci
cargo test --workspace --doc
