"""Start one Milvus standalone from the PyPI `milvus` wheel, on fixed ports.

Usage (with the venv python that has milvus==2.3.5):
    python milvus_launch.py --data DIR --bin BINDIR [--metrics-port 9091]
                            [--set key.path=value ...]

Why not `milvus-server`: its Python wrapper probes every port by binding
127.0.0.1 without SO_REUSEADDR, so a port that merely has TIME_WAIT
connections left from a previous run (health checks, killed clients) counts
as taken and the wrapper silently moves Milvus to the next port (9091 ->
9092 was seen here). It also outlives a dead `milvus` child and leaves the
child running on SIGTERM.

This launcher renders the config exactly as milvus-server does (same
template, same MilvusServerConfig code, same data-dir layout:
DIR/configs/milvus.yaml, DIR/data = localStorage.path, DIR/logs), but keeps
the template's fixed ports and then exec()s the `milvus` binary itself, so
the process we started *is* Milvus: its exit is visible, a signal reaches
it, and Go binds its ports with SO_REUSEADDR. A taken port makes Milvus fail
to start instead of moving.

Unlike milvus-server's --extra-config, an unknown --set key is an error
(the wrapper drops keys that are not in its template without a word).
"""
import argparse
import os
import re
import sys

import milvus


def template_keys(text):
    """Dotted keys of the YAML template, walked the way milvus-server's
    update_extra_configs walks it (2 spaces per level)."""
    keys, current = set(), []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        m = re.match(r"^( *[a-zA-Z0-9_]+):([^#]*)(#.*)?$", line.rstrip())
        if not m:
            continue
        key_with_prefix = m.group(1).rstrip()
        key = key_with_prefix.strip()
        level = (len(key_with_prefix) - len(key)) // 2
        current = current[:level] + [key]
        keys.add(".".join(current))
    return keys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="base data dir (created)")
    ap.add_argument("--bin", required=True, help="dir holding the unpacked milvus binary and its libraries")
    ap.add_argument("--metrics-port", default="9091", help="management/metrics HTTP port")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="rewrite a key of the template, e.g. common.storageType=minio")
    args = ap.parse_args()

    data_dir = os.path.abspath(args.data)
    exe = os.path.join(os.path.abspath(args.bin), "milvus")
    if not os.access(exe, os.X_OK):
        sys.exit(f"milvus_launch: {exe} is not executable (run scripts/setup.sh)")

    cfg = milvus.MilvusServerConfig(data_dir=data_dir)
    known = template_keys(cfg.template_text)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"milvus_launch: --set wants KEY=VALUE, got {item!r}")
        if key not in known:
            sys.exit(f"milvus_launch: {key} is not a key of the milvus {milvus.__version__} "
                     "config template; it would be ignored")
        # Written verbatim into the YAML (e.g. `useSSL: false`).
        cfg.set(key, value)
    # Sets the paths under data_dir (etcd data, local storage, rocksmq, logs);
    # ports keep the template defaults (19530, 2379, ...): no probing.
    cfg.resolve_storage()
    unresolved = [k for k, (_, v) in cfg.configurable_items.items() if v is None]
    if unresolved:
        sys.exit(f"milvus_launch: unresolved template values: {unresolved}")
    cfg.write_config()

    env = dict(os.environ)
    env.update({
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(args.metrics_port),
        "LD_LIBRARY_PATH": os.path.dirname(exe) + ":" + os.environ.get("LD_LIBRARY_PATH", ""),
    })
    os.chdir(data_dir)
    sys.stdout.flush()
    os.execve(exe, [exe, "run", "standalone"], env)


if __name__ == "__main__":
    main()
