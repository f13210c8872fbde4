"""What the door lets through, in bytes and counts: a request over these is refused before any
byte of it reaches Triton (Triton 2.51's HTTP server crashes on some oversized or many-chunked
bodies, docs/faults.md)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class DoorLimits:
    """`max_body_bytes` bounds an HTTP body and a gRPC message (a 4,096-token prompt is ~30 kB as
    JSON ids); `max_chunks` an HTTP chunked body's chunk count; the header bounds go to the HTTP
    parser (a header line, one field, how many) and to gRPC's metadata."""

    max_body_bytes: int = MIB
    max_chunks: int = 1024
    max_header_line: int = 8190
    max_header_field: int = 8190
    max_headers: int = 64
    max_grpc_metadata_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
