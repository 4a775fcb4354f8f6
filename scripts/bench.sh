#!/usr/bin/env bash
# Benchmark (not a test): Milvault's copy engine against `rclone copy` of the same
# files, in one run, printing the ratio. Arguments go to milvault-bench-copy:
#   bash scripts/bench.sh [FILES] [BYTES_PER_FILE] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null
export PATH="$(pwd)/.tools/bin:$PATH"
cargo build --release -p milvault-tests --bin milvault-bench-copy
target/release/milvault-bench-copy "$@"
