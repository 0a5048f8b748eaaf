"""A small OTLP/HTTP trace receiver for crates/cli/tests/telemetry_otlp.rs.

No OpenTelemetry Collector can be installed here, so this serves the official
OTLP/HTTP protocol (POST /v1/traces, Content-Type application/x-protobuf) and
decodes each body as an ExportTraceServiceRequest with the official protobuf
definitions (the `opentelemetry.proto` Python package: PyPI `opentelemetry-proto`,
also shipped inside `xds-protos`, both generated from open-telemetry/opentelemetry-proto).

Usage: otlp_receiver.py DIR PROTO_DIR (where install-peers put opentelemetry-proto)
Writes DIR/port (the port it listens on, 127.0.0.1), appends every decoded
export to DIR/exports.jsonl (one span a line, flattened) and every raw body to
DIR/raw.bin. A body that does not decode answers 400 and is logged.
"""

import json
import os
import sys
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = sys.argv[1]
PROTO = sys.argv[2]

# The venv's `opentelemetry` package (from xds-protos) is a regular package with
# an older copy of the protos, and would win over a namespace portion on sys.path:
# point the package at the `opentelemetry-proto` folder install-peers made.
_pkg = types.ModuleType("opentelemetry")
_pkg.__path__ = [os.path.join(PROTO, "opentelemetry")]
sys.modules["opentelemetry"] = _pkg

from google.protobuf.message import DecodeError  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(any_value, kind)
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return str(v)
    return v


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        req = trace_service_pb2.ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except DecodeError as e:
            print("undecodable export:", e, flush=True)
            self.send_response(400)
            self.end_headers()
            return
        lines = []
        for rs in req.resource_spans:
            resource = {a.key: value_of(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(json.dumps({
                        "name": s.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "kind": s.kind,
                        "attributes": {a.key: value_of(a.value) for a in s.attributes},
                        "events": len(s.events),
                        "resource": resource,
                        "scope": ss.scope.name,
                        "content_type": self.headers.get("content-type"),
                        "x_test_header": self.headers.get("x-test-header"),
                    }))
        with open(os.path.join(OUT, "exports.jsonl"), "a") as f:
            for line in lines:
                f.write(line + "\n")
        with open(os.path.join(OUT, "raw.bin"), "ab") as f:
            f.write(body)
        out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, fmt, *args):
        print("otlp_receiver:", fmt % args, flush=True)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
tmp = os.path.join(OUT, "port.tmp")
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, os.path.join(OUT, "port"))
server.serve_forever()
