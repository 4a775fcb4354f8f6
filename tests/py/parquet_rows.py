"""Reads every Parquet file under a directory with pyarrow and prints one canonical
JSON document: {"rows": [...], "schema": <milvus.schema metadata>, "names": [...]}.

Canonical values (the Rust test renders Milvus query results the same way):
float32 -> "f:<8 hex digits of its bits>", float64 -> "d:<16 hex digits>", lists
element-wise, fixed-size lists of uint8 (binary vectors) -> hex string, JSON columns
(Milvus JSON fields and $meta) -> the parsed JSON value, others as they are.
Rows are sorted by the primary key.
"""
import glob
import json
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def f32(v):
    return "f:%08x" % struct.unpack("<I", struct.pack("<f", v))[0]


def f64(v):
    return "d:%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]


def canon(value, typ, is_json):
    if value is None:
        return None
    if is_json:
        return json.loads(value)
    if pa.types.is_float32(typ):
        return f32(value)
    if pa.types.is_float64(typ):
        return f64(value)
    if pa.types.is_fixed_size_list(typ) and pa.types.is_uint8(typ.value_type):
        return bytes(value).hex()
    if pa.types.is_list(typ) or pa.types.is_fixed_size_list(typ):
        return [canon(v, typ.value_type, False) for v in value]
    return value


def main(directory):
    files = sorted(glob.glob(directory + "/**/*.parquet", recursive=True))
    rows, meta, names = [], None, None
    for path in files:
        table = pq.read_table(path)
        md = table.schema.metadata or {}
        meta = json.loads(md[b"milvus.schema"].decode())
        json_fields = {f["name"] for f in meta.get("fields", []) if f.get("dataType") == "DATA_TYPE_JSON"}
        json_fields.add("$meta")
        names = table.schema.names
        for rec in table.to_pylist():
            rows.append({
                k: canon(v, table.schema.field(k).type, k in json_fields) for k, v in rec.items()
            })
    pk = next(f["name"] for f in meta["fields"] if f.get("isPrimaryKey"))
    rows.sort(key=lambda r: r[pk])
    print(json.dumps({"rows": rows, "names": names, "pk": pk, "files": len(files)}))


if __name__ == "__main__":
    main(sys.argv[1])
