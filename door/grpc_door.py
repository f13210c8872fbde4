"""The gRPC side of the door: a grpc.aio server that takes every method of Triton's
GRPCInferenceService as raw bytes, reads the model a message names (tritonclient's protobufs, the
same parser Triton uses, so a message means the same model to both), and forwards the bytes
unchanged on one shared channel to Triton's private port, or refuses with PERMISSION_DENIED.

A stream is checked message by message (one ModelStreamInfer stream may name a different model in
each); the first refused message ends it. Ending a call ends its upstream call: a client that
cancels its stream through the door cancels Triton's, which is how `ltr_bls` frees its slot.
Client metadata is not forwarded (Triton reads keys from it), nor is compression negotiated beyond
what grpc does per hop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Callable

import grpc
from google.protobuf.message import DecodeError, Message
from tritonclient.grpc import service_pb2

from door.limits import DoorLimits
from door.policy import (
    STREAM_METHODS,
    Refusal,
    grpc_method_name,
    grpc_method_refusal,
    grpc_model_refusal,
)

log = logging.getLogger("door.grpc")

# Which message type each model-naming method takes, and where the model is in it.
_REQUEST_TYPES: dict[str, tuple[type[Message], str, str]] = {
    "ModelInfer": (service_pb2.ModelInferRequest, "model_name", "model_version"),
    "ModelStreamInfer": (service_pb2.ModelInferRequest, "model_name", "model_version"),
    "ModelReady": (service_pb2.ModelReadyRequest, "name", "version"),
    "ModelMetadata": (service_pb2.ModelMetadataRequest, "name", "version"),
    "ModelConfig": (service_pb2.ModelConfigRequest, "name", "version"),
}


class RefusedMessage(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def message_refusal(method: str, raw: bytes) -> RefusedMessage | None:
    """Why this message of `method` may not pass (None: it may)."""
    kind = _REQUEST_TYPES.get(method)
    if kind is None:
        return None
    message_type, name_field, version_field = kind
    message = message_type()
    try:
        message.ParseFromString(raw)
    except DecodeError:
        return RefusedMessage(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: the message does not parse")
    refusal = grpc_model_refusal(getattr(message, name_field), getattr(message, version_field))
    return None if refusal is None else RefusedMessage(grpc.StatusCode.PERMISSION_DENIED, refusal.reason)


class GrpcDoor(grpc.GenericRpcHandler):
    """Every method arrives here; allowed ones are forwarded, the rest refused."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        full_method = details.method
        refusal = grpc_method_refusal(full_method)
        if refusal is not None:
            return grpc.unary_unary_rpc_method_handler(_refuse(refusal))
        name = grpc_method_name(full_method) or ""
        if name in STREAM_METHODS:
            return grpc.stream_stream_rpc_method_handler(self._stream(full_method, name))
        return grpc.unary_unary_rpc_method_handler(self._unary(full_method, name))

    def _unary(self, full_method: str, name: str) -> Callable:
        async def forward(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if (refused := message_refusal(name, raw)) is not None:
                await context.abort(refused.code, refused.reason)
            call = self.channel.unary_unary(full_method)(raw, timeout=context.time_remaining())
            try:
                return await call
            except grpc.aio.AioRpcError as err:
                await context.abort(err.code(), err.details() or "")
            finally:
                call.cancel()  # a no-op once done; ends Triton's call when the client went away

        return forward

    def _stream(self, full_method: str, name: str) -> Callable:
        async def forward(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            call = self.channel.stream_stream(full_method)(timeout=context.time_remaining())
            refused: list[RefusedMessage] = []
            pump = asyncio.create_task(_pump(name, requests, call, refused))
            try:
                while True:
                    try:
                        response = await call.read()
                    except asyncio.CancelledError:
                        if refused:  # the pump cancelled the call on a refused message
                            break
                        raise
                    if response is grpc.aio.EOF:
                        break
                    yield response
                if not refused:
                    code = await call.code()
                    if code != grpc.StatusCode.OK:
                        await context.abort(code, await call.details() or "")
            except grpc.aio.AioRpcError as err:
                if not refused:
                    await context.abort(err.code(), err.details() or "")
            finally:
                call.cancel()
                pump.cancel()
            if refused:
                await context.abort(refused[0].code, refused[0].reason)

        return forward


async def _pump(name: str, requests: AsyncIterator[bytes], call: grpc.aio.StreamStreamCall,
                refused: list[RefusedMessage]) -> None:
    """Client messages to Triton, each checked; a refused one cancels the call."""
    try:
        async for raw in requests:
            if (refusal := message_refusal(name, raw)) is not None:
                refused.append(refusal)
                call.cancel()
                return
            await call.write(raw)
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass  # the call ended first; its reader reports how
    except grpc.aio.UsageError:
        pass  # the call was cancelled while writing


def _refuse(refusal: Refusal) -> Callable:
    async def refuse(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal.reason)
        return b""

    return refuse


def upstream_channel(triton_grpc: str) -> grpc.aio.Channel:
    """One channel to Triton's private gRPC port, shared by every call (HTTP/2 multiplexes them)."""
    return grpc.aio.insecure_channel(triton_grpc, options=[
        ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])


async def start_grpc_door(host: str, port: int, triton_grpc: str, limits: DoorLimits) -> grpc.aio.Server:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", limits.max_body_bytes),
        ("grpc.max_metadata_size", limits.max_grpc_metadata_bytes),
        ("grpc.so_reuseport", 0),
    ])
    server.add_generic_rpc_handlers((GrpcDoor(upstream_channel(triton_grpc)),))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"the gRPC door cannot listen on {host}:{port}")
    await server.start()
    return server
