#!/usr/bin/env python3
"""Decodes a Jaeger Thrift `Batch` (the body of POST /api/traces) and prints it as JSON.

Usage:  python decoders/jaeger_thrift.py < body.thrift
Decoding uses jaeger-client's generated types (jaeger_client.thrift_gen.jaeger.ttypes.Batch)
and the `thrift` library's plain TBinaryProtocol, i.e. code independent of the Rust encoder.
The whole body must be consumed by one Batch. Output:
  {"process": {"serviceName": str, "tags": {key: value}, "tagTypes": {key: TYPE}},
   "spans": [{"traceId": 32 hex, "spanId": 16 hex, "parentSpanId": 16 hex or null,
              "operationName", "flags", "startTime" (µs), "duration" (µs),
              "references": [{"refType": "CHILD_OF"|"FOLLOWS_FROM", "traceId", "spanId"}],
              "tags": {key: value}, "tagTypes": {key: "STRING"|"DOUBLE"|"BOOL"|"LONG"|"BINARY"},
              "logs": [{"timestamp": µs, "fields": {key: value}}]}]}
Binary tag values are printed as base64. Exits 1 with the reason on stderr when the body is not
a valid Batch. Needs `thrift`, `six` and `jaeger-client` (AETHERFLOW_PYTHON has them); used by the
exporter tests and the end-to-end tests.
"""
import base64
import json
import sys

from thrift.protocol import TBinaryProtocol
from thrift.transport import TTransport

from jaeger_client.thrift_gen.jaeger import ttypes

TAG_TYPES = {v: k for k, v in ttypes.TagType._NAMES_TO_VALUES.items()}
REF_TYPES = {v: k for k, v in ttypes.SpanRefType._NAMES_TO_VALUES.items()}
MASK = (1 << 64) - 1


def hex64(v):
    return "%016x" % (v & MASK)


class Protocol(TBinaryProtocol.TBinaryProtocol):
    """Plain TBinaryProtocol whose strings survive non-UTF-8 bytes.

    jaeger-client's generated code reads the `binary` field vBinary with readString (which
    decodes UTF-8); surrogateescape keeps the raw bytes recoverable, and text fields are
    checked for escapes (invalid UTF-8) in tag_value.
    """

    def readString(self):
        return self.readBinary().decode("utf-8", "surrogateescape")


def text(v, what):
    if v is None:
        raise ValueError("%s is missing" % what)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("%s is not valid UTF-8" % what)
    return v


def tag_value(t):
    kind = TAG_TYPES.get(t.vType)
    if kind == "STRING":
        return text(t.vStr, "vStr of tag %r" % t.key)
    if kind == "DOUBLE":
        return t.vDouble
    if kind == "BOOL":
        return t.vBool
    if kind == "LONG":
        return t.vLong
    if kind == "BINARY":
        raw = t.vBinary
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        return base64.b64encode(raw).decode()
    raise ValueError("tag %r has unknown vType %r" % (t.key, t.vType))


def tags(ts):
    values, types = {}, {}
    for t in ts or []:
        if t.key is None:
            raise ValueError("tag without key")
        values[t.key] = tag_value(t)
        types[t.key] = TAG_TYPES[t.vType]
    return values, types


def span_json(s):
    for field in ("traceIdLow", "traceIdHigh", "spanId", "parentSpanId", "operationName",
                  "flags", "startTime", "duration"):
        if getattr(s, field) is None:
            raise ValueError("span misses required field %s" % field)
    values, types = tags(s.tags)
    return {
        "traceId": hex64(s.traceIdHigh) + hex64(s.traceIdLow),
        "spanId": hex64(s.spanId),
        "parentSpanId": hex64(s.parentSpanId) if s.parentSpanId else None,
        "operationName": text(s.operationName, "operationName"),
        "flags": s.flags,
        "startTime": s.startTime,
        "duration": s.duration,
        "references": [{"refType": REF_TYPES[r.refType],
                        "traceId": hex64(r.traceIdHigh) + hex64(r.traceIdLow),
                        "spanId": hex64(r.spanId)} for r in s.references or []],
        "tags": values,
        "tagTypes": types,
        "logs": [{"timestamp": l.timestamp, "fields": tags(l.fields)[0]} for l in s.logs or []],
    }


def decode(body):
    transport = TTransport.TMemoryBuffer(body)
    batch = ttypes.Batch()
    batch.read(Protocol(transport))
    rest = len(body) - transport._buffer.tell()
    if rest:
        raise ValueError("%d bytes left after the Batch" % rest)
    if batch.process is None or batch.process.serviceName is None:
        raise ValueError("Batch has no process.serviceName")
    if batch.spans is None:
        raise ValueError("Batch has no spans list")
    values, types = tags(batch.process.tags)
    return {
        "process": {"serviceName": batch.process.serviceName, "tags": values, "tagTypes": types},
        "spans": [span_json(s) for s in batch.spans],
    }


def main():
    body = sys.stdin.buffer.read()
    try:
        out = decode(body)
    except Exception as e:  # any decode failure is a test failure with its reason
        sys.exit("not a Jaeger Thrift Batch: %s: %s" % (type(e).__name__, e))
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
