"""Fixtures the server tests share: a gRPC client of the module's own `server` fixture."""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient


@pytest.fixture()
def grpc(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    yield client
    client.close()
