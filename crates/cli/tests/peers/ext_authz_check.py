"""Sends envoy.service.auth.v3 CheckRequests to Portcullis with grpcio and the
official generated protos (PyPI xds-protos), independently of Envoy and of the
Rust protos Portcullis is built with. Used by crates/cli/tests/ext_authz_grpcio.rs.

stdin: {"target": "127.0.0.1:PORT",
        "checks": [{"name": "...", "method": "GET", "host": "...", "path": "/x?y=1",
                    "headers": {"name": "value"},            # the `headers` map, or
                    "header_map": [["name", "raw value"]],   # encode_raw_headers style
                    "context_extensions": {"rule": "NAME"},
                    "omit": "http" | "attributes"}],           # malformed requests
        "health": ["", "envoy.service.auth.v3.Authorization", ...]}
stdout: {"checks": {NAME: {"rpc": "OK" | grpc status name, "details": "...",
                           "response": CheckResponse as proto3 JSON (field names kept)}},
         "health": {SERVICE: "SERVING" | ... | "rpc error: NOT_FOUND"},
         "versions": {...}}
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc


def health_classes():
    """grpc.health.v1 (not shipped by xds-protos), built from its published schema."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="portcullis_tests/grpc_health_v1.proto", package="grpc.health.v1", syntax="proto3"
    )
    req = fdp.message_type.add(name="HealthCheckRequest")
    req.field.add(
        name="service",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    resp = fdp.message_type.add(name="HealthCheckResponse")
    enum = resp.enum_type.add(name="ServingStatus")
    for number, name in enumerate(["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]):
        enum.value.add(name=name, number=number)
    resp.field.add(
        name="status",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
        type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    request_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest"))
    response_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse"))
    return request_cls, response_cls


def check_request(spec):
    req = external_auth_pb2.CheckRequest()
    if spec.get("omit") == "attributes":
        return req
    attrs = req.attributes
    attrs.source.address.socket_address.address = "127.0.0.1"
    attrs.source.address.socket_address.port_value = 50000
    for k, v in spec.get("context_extensions", {}).items():
        attrs.context_extensions[k] = v
    if spec.get("omit") == "http":
        attrs.request.time.GetCurrentTime()
        return req
    http = attrs.request.http
    http.id = "1"
    http.method = spec.get("method", "GET")
    http.host = spec.get("host", "api.example.com")
    http.path = spec.get("path", "/")
    http.scheme = "http"
    http.protocol = "HTTP/1.1"
    if "header_map" in spec:
        for name, value in spec["header_map"]:
            http.header_map.headers.add(key=name, raw_value=value.encode())
    else:
        for name, value in spec.get("headers", {}).items():
            http.headers[name] = value
    return req


def main():
    job = json.load(sys.stdin)
    out = {"checks": {}, "health": {}}
    with grpc.insecure_channel(job["target"]) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        for spec in job["checks"]:
            try:
                resp = stub.Check(check_request(spec), timeout=10)
                out["checks"][spec["name"]] = {
                    "rpc": "OK",
                    "response": json_format.MessageToDict(
                        resp,
                        preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True,
                    ),
                }
            except grpc.RpcError as e:
                out["checks"][spec["name"]] = {"rpc": e.code().name, "details": e.details()}
        request_cls, response_cls = health_classes()
        health = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        for service in job.get("health", []):
            try:
                r = health(request_cls(service=service), timeout=10)
                out["health"][service] = response_cls.ServingStatus.Name(r.status)
            except grpc.RpcError as e:
                out["health"][service] = "rpc error: " + e.code().name
    # The names the official protos give the enum Portcullis must use for identity headers.
    out["append_actions"] = dict(base_pb2.HeaderValueOption.HeaderAppendAction.items())
    out["grpcio"] = grpc.__version__
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
