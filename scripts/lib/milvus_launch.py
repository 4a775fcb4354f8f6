"""Start one Milvus standalone from the PyPI `milvus` wheel, on fixed ports.

Usage (with the python of a venv that has the `milvus` wheel whose binaries
BINDIR holds: milvus==2.3.5 for A/B, milvus==2.2.16 for C):
    python milvus_launch.py --data DIR --bin BINDIR [--metrics-port 9091]
                            [--set key.path=value ...] [--config-only]

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

Milvus 2.2 wheels: their template leaves the coordinator/node ports without
a default ({{ root_coord_port(int) }}, ...), which MilvusServerConfig turns
into 0 and milvus-server then replaces with a probed free port from 40000
up. A port of 0 is not usable (each component registers host:port in etcd
for the others to dial), so any port left at 0 gets the upstream default
from Milvus 2.2's own configs/milvus.yaml (UPSTREAM_PORTS below). Every
instance runs in its own network namespace or alone, so fixed ports are fine.

--config-only writes DIR/configs/milvus.yaml and exits (setup.sh uses it to
smoke-test a 2.2 binary, which panics at start without a config).
"""
import argparse
import os
import re
import sys

import milvus

# Defaults of Milvus' own configs/milvus.yaml (2.2 and 2.3 agree), for the
# template ports that have none in the 2.2 wheels.
UPSTREAM_PORTS = {
    "root_coord_port": 53100,
    "proxy_port": 19530,
    "proxy_internal_port": 19529,
    "query_coord_port": 19531,
    "query_node_port": 21123,
    "index_coord_port": 31000,
    "index_node_port": 21121,
    "data_coord_port": 13333,
    "data_node_port": 21124,
    "etcd_port": 2379,
}


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
    ap.add_argument("--config-only", action="store_true",
                    help="write DIR/configs/milvus.yaml and exit")
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
    for key, (_, value) in cfg.configurable_items.items():
        if key.endswith("_port") and not value and key in UPSTREAM_PORTS:
            cfg.set(key, UPSTREAM_PORTS[key])
    unresolved = [k for k, (_, v) in cfg.configurable_items.items()
                  if v is None or (k.endswith("_port") and not v)]
    if unresolved:
        sys.exit(f"milvus_launch: unresolved template values: {unresolved}")
    cfg.write_config()
    if args.config_only:
        return

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
