"""The gRPC door reads the model a message names with Triton's own protobufs."""

from __future__ import annotations

import grpc
from tritonclient.grpc import service_pb2

from door.grpc_door import message_refusal


def test_the_model_named_in_the_message_decides():
    public = service_pb2.ModelInferRequest(model_name="ltr_bls").SerializeToString()
    internal = service_pb2.ModelInferRequest(model_name="tensorrt_llm").SerializeToString()
    assert message_refusal("ModelStreamInfer", public) is None
    assert message_refusal("ModelInfer", internal).code == grpc.StatusCode.PERMISSION_DENIED
    assert message_refusal("ModelMetadata", service_pb2.ModelMetadataRequest(name="ltr_scheduler").SerializeToString())


def test_a_repeated_name_field_means_what_it_means_to_triton():
    """Protobuf keeps the last value of a repeated scalar field, for the door as for Triton."""
    twice = (service_pb2.ModelInferRequest(model_name="ltr_bls").SerializeToString()
             + service_pb2.ModelInferRequest(model_name="tensorrt_llm").SerializeToString())
    assert message_refusal("ModelInfer", twice) is not None


def test_a_message_that_does_not_parse_is_refused():
    assert message_refusal("ModelInfer", b"\xff\xff\xff").code == grpc.StatusCode.INVALID_ARGUMENT


def test_methods_without_a_model_pass_unread():
    assert message_refusal("ServerReady", b"anything") is None
