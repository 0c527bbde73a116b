"""Decodes Jaeger Thrift `Batch` bodies (plain TBinaryProtocol, as POSTed to /api/traces) with the
Jaeger client's generated Thrift types, independently of the shim's Rust encoder.

Input: file paths, each holding one raw request body. Output (stdout): one JSON array of spans,
ids as lowercase hex, tags as {key: value}, the batch's process service name on each span.
"""
import json
import sys

from jaeger_client.thrift_gen.jaeger import ttypes
from thrift.protocol import TBinaryProtocol
from thrift.transport import TTransport


def u64_hex(value):
    return format(value & 0xFFFFFFFFFFFFFFFF, "016x")


def tag_value(tag):
    kinds = {
        ttypes.TagType.STRING: lambda t: t.vStr,
        ttypes.TagType.DOUBLE: lambda t: t.vDouble,
        ttypes.TagType.BOOL: lambda t: t.vBool,
        ttypes.TagType.LONG: lambda t: t.vLong,
        ttypes.TagType.BINARY: lambda t: (t.vBinary or b"").hex(),
    }
    return kinds.get(tag.vType, lambda t: None)(tag)


def decode(body):
    transport = TTransport.TMemoryBuffer(body)
    batch = ttypes.Batch()
    batch.read(TBinaryProtocol.TBinaryProtocol(transport))
    if transport.cstringio_buf.read(1):
        raise ValueError("trailing bytes after the Batch")
    service = batch.process.serviceName if batch.process else None
    process_tags = {t.key: tag_value(t) for t in (batch.process.tags or [])} if batch.process else {}
    for span in batch.spans or []:
        yield {
            "traceId": u64_hex(span.traceIdHigh) + u64_hex(span.traceIdLow),
            "spanId": u64_hex(span.spanId),
            "parentSpanId": u64_hex(span.parentSpanId),
            "references": [
                {"refType": r.refType, "traceId": u64_hex(r.traceIdHigh) + u64_hex(r.traceIdLow), "spanId": u64_hex(r.spanId)}
                for r in (span.references or [])
            ],
            "operationName": span.operationName,
            "flags": span.flags,
            "startTime": span.startTime,
            "duration": span.duration,
            "tags": {t.key: tag_value(t) for t in (span.tags or [])},
            "logs": [{f.key: tag_value(f) for f in (log.fields or [])} for log in (span.logs or [])],
            "serviceName": service,
            "processTags": process_tags,
        }


def main():
    spans = []
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            spans.extend(decode(f.read()))
    json.dump(spans, sys.stdout)


if __name__ == "__main__":
    main()
