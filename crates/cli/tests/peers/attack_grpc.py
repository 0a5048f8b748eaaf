"""Envoy ext_authz v3 client for crates/cli/tests/attacks.rs.

Usage: attack_grpc.py HOST:PORT < cases.json > results.json

Reads a JSON list of cases on stdin, each {"token": str, "path": str} (optional
"method", "host", "rule": a context_extensions rule name), sends one
envoy.service.auth.v3.Authorization/Check per case, in order, with the token as
`authorization: Bearer <token>`, and writes a JSON list of results (same order):

  {"code": google.rpc.Code of CheckResponse.status,
   "allowed": true when the answer is an OkHttpResponse,
   "http_status": the DeniedHttpResponse status (200 for an allow),
   "body": the denied body (text), "headers": {name: value} of the answer}

or {"rpc_error": "<grpc status name>: <details>"} when the call itself failed
(the tests treat that as a failure: a deny must be an answer, not an error).
"""

import json
import sys

import grpc
from envoy.service.auth.v3 import attribute_context_pb2 as attribute_context
from envoy.service.auth.v3 import external_auth_pb2 as external_auth
from envoy.service.auth.v3 import external_auth_pb2_grpc as external_auth_grpc

# Large enough for the biggest attack token (10^6 dots) both ways.
MAX_MESSAGE = 16 * 1024 * 1024


def check_request(case):
    http = attribute_context.AttributeContext.HttpRequest(
        id="attack",
        method=case.get("method", "GET"),
        host=case.get("host", "orders.example"),
        path=case["path"],
        scheme="https",
        protocol="HTTP/1.1",
        headers={"authorization": "Bearer " + case["token"]},
    )
    attrs = attribute_context.AttributeContext(
        request=attribute_context.AttributeContext.Request(http=http)
    )
    if case.get("rule"):
        attrs.context_extensions["rule"] = case["rule"]
    return external_auth.CheckRequest(attributes=attrs)


def header_map(options):
    out = {}
    for option in options:
        value = option.header.value or option.header.raw_value.decode("latin-1")
        out[option.header.key.lower()] = value
    return out


def answer(response):
    result = {"code": response.status.code}
    kind = response.WhichOneof("http_response")
    if kind == "denied_response":
        denied = response.denied_response
        result.update(
            allowed=False,
            http_status=denied.status.code,
            body=denied.body,
            headers=header_map(denied.headers),
        )
    elif kind == "ok_response":
        result.update(
            allowed=True,
            http_status=200,
            body="",
            headers=header_map(response.ok_response.headers),
        )
    else:
        result.update(allowed=response.status.code == 0, http_status=0, body="", headers={})
    return result


def main():
    target = sys.argv[1]
    cases = json.load(sys.stdin)
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
    ]
    results = []
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=20)
        stub = external_auth_grpc.AuthorizationStub(channel)
        for case in cases:
            try:
                response = stub.Check(check_request(case), timeout=30)
                results.append(answer(response))
            except grpc.RpcError as e:
                results.append({"rpc_error": f"{e.code().name}: {e.details()}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
