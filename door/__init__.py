"""The door: the one process clients reach in front of Triton (`python -m door`).

Triton 2.51 can restrict its administrative APIs but not inference per model, and its HTTP
server has crash bugs (docs/faults.md). So Triton listens on private loopback ports, and the door
listens where clients connect: it forwards only inference on the public models (`ltr_bls`,
`ensemble`), health, their metadata and the metrics page, refuses everything else (HTTP 403, gRPC
PERMISSION_DENIED) and bounds what it forwards (body size, chunk count, header size).

Modules: `policy` (what is allowed: HTTP routes and gRPC methods, decided from the request alone),
`limits` (the bounds), `http_door` (aiohttp, streaming pass-through), `grpc_door` (grpc.aio, raw
bytes forwarded after the model name is read), `server` (both on one event loop).

It may import `repo_paths` and `runtime` only (nothing below it imports it); `deploy` starts it.
"""
