#!/usr/bin/env python3
"""Checks a Zipkin v2 JSON body (POST /api/v2/spans) and prints it back as JSON.

Usage:  python decoders/zipkin_json.py < body.json
Reads the request body on stdin, validates it with jsonschema against
zipkin2-spans.schema.json (written from zipkin2-api.yaml, beside this file), then applies the
checks a schema cannot express:
  * the id is not all zeros, and a span is not its own parent;
  * `shared` appears only on SERVER spans;
  * a span appears once per (traceId, id, shared).
Prints {"spans": [...]} (the spans as received) on success; on failure prints the reason on
stderr and exits 1. Needs the `jsonschema` package (AETHERFLOW_PYTHON has it). Independent of
the Rust code: used by the exporter tests and the end-to-end tests.
"""
import json
import os
import sys

import jsonschema

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zipkin2-spans.schema.json")


def check(spans):
    seen = set()
    for n, s in enumerate(spans):
        where = "span %d (%s)" % (n, s.get("name", "?"))
        if set(s["traceId"]) == {"0"}:
            raise ValueError(where + ": traceId is all zeros")
        if set(s["id"]) == {"0"}:
            raise ValueError(where + ": id is all zeros")
        if s.get("parentId") == s["id"]:
            raise ValueError(where + ": parentId equals id")
        if s.get("shared") and s.get("kind") != "SERVER":
            raise ValueError(where + ": shared set on a non-SERVER span")
        key = (s["traceId"], s["id"], bool(s.get("shared")))
        if key in seen:
            raise ValueError(where + ": duplicate span %s/%s" % key[:2])
        seen.add(key)


def main():
    raw = sys.stdin.buffer.read()
    try:
        spans = json.loads(raw)
    except ValueError as e:
        sys.exit("not JSON: %s" % e)
    with open(SCHEMA) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(spans), key=lambda e: list(e.path))
    if errors:
        sys.exit("schema: " + "; ".join(
            "%s: %s" % ("/".join(str(p) for p in e.path), e.message) for e in errors[:10]))
    try:
        check(spans)
    except ValueError as e:
        sys.exit(str(e))
    json.dump({"spans": spans}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
