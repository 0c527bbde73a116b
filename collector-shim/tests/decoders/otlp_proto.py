#!/usr/bin/env python3
"""Decodes an OTLP/HTTP protobuf traces body (ExportTraceServiceRequest) and prints it as JSON.

Usage:  python decoders/otlp_proto.py [--gzip] < body.bin
The body is gunzipped first when --gzip is given or when it starts with the gzip magic bytes.
Decoding uses the Python `opentelemetry-proto` package (independent of the Rust prost types);
the output is protobuf's canonical JSON mapping (lowerCamelCase, enums as names, 64-bit
integers as strings) except that traceId, spanId and parentSpanId (and link ids) are printed as
lower-case hex, as OTLP/JSON does, instead of base64. Trailing garbage or a malformed message
exits 1 with the reason on stderr. Used by the exporter tests and the end-to-end tests.
"""
import base64
import gzip
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def hex_ids(obj):
    for key in ID_FIELDS:
        if key in obj:
            obj[key] = base64.b64decode(obj[key]).hex()
    for link in obj.get("links", []):
        hex_ids(link)


def main():
    body = sys.stdin.buffer.read()
    if "--gzip" in sys.argv[1:] or body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except OSError as e:
            sys.exit("bad gzip body: %s" % e)
    req = trace_service_pb2.ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except Exception as e:  # DecodeError and friends
        sys.exit("not an ExportTraceServiceRequest: %s" % e)
    if req.SerializeToString(deterministic=True) != body and len(req.SerializeToString()) != len(body):
        # Unknown fields survive a round trip, so a length change means bytes were skipped.
        sys.exit("body has %d bytes, the message re-encodes to %d" % (len(body), len(req.SerializeToString())))
    out = json_format.MessageToDict(req)
    for rs in out.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                hex_ids(span)
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
