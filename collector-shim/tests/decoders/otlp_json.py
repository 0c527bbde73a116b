#!/usr/bin/env python3
"""Reads an OTLP/JSON traces body (ExportTraceServiceRequest) and checks it against the OTLP/JSON
encoding rules, then decodes it with the Python `opentelemetry-proto` package.

Usage:  python decoders/otlp_json.py < body.json   (gunzipped first when it starts with gzip magic)
Rules checked (OTLP specification, "JSON Protobuf Encoding"): keys are lowerCamelCase (no `_`),
traceId/spanId/parentSpanId are lower-case hex (32/16 characters) rather than base64, enum
fields (kind, status.code) are integers, 64-bit integer fields (timestamps, intValue) are
strings. The message is then parsed strictly (unknown keys are errors) after turning the hex
ids into bytes. Prints JSON: {"violations": [...], "protobuf_hex": "<deterministic encoding>"}.
A body that is not JSON or not an ExportTraceServiceRequest exits 1 with the reason on stderr.
"""
import base64
import gzip
import json
import re
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

HEX_LEN = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
ENUMS = ("kind", "code")
INT64 = ("startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue")


def check(obj, path, violations):
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            check(item, "%s[%d]" % (path, i), violations)
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        where = "%s.%s" % (path, key)
        if "_" in key:
            violations.append("%s: key is not lowerCamelCase" % where)
        if key in HEX_LEN and value != "":
            if not (isinstance(value, str) and re.fullmatch("[0-9a-f]{%d}" % HEX_LEN[key], value)):
                violations.append("%s: %r is not %d lower-case hex digits" % (where, value, HEX_LEN[key]))
        if key in ENUMS and not isinstance(value, int):
            violations.append("%s: enum %r is not an integer" % (where, value))
        if key in INT64 and not isinstance(value, str):
            violations.append("%s: 64-bit integer %r is not a string" % (where, value))
        check(value, where, violations)


def ids_to_base64(obj):
    """Protobuf's JSON mapping reads bytes as base64; OTLP/JSON writes ids as hex."""
    for key in HEX_LEN:
        if isinstance(obj.get(key), str):
            obj[key] = base64.b64encode(bytes.fromhex(obj[key])).decode()
    for link in obj.get("links", []):
        ids_to_base64(link)


def main():
    body = sys.stdin.buffer.read()
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except OSError as e:
            sys.exit("bad gzip body: %s" % e)
    try:
        doc = json.loads(body)
    except ValueError as e:
        sys.exit("not JSON: %s" % e)
    violations = []
    check(doc, "$", violations)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                ids_to_base64(span)
    req = trace_service_pb2.ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, req, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        sys.exit("not an ExportTraceServiceRequest: %s" % e)
    json.dump(
        {"violations": violations, "protobuf_hex": req.SerializeToString(deterministic=True).hex()},
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
