"""Both sides of the door on one event loop: the work is relaying bytes, Triton does the computing.

    python -m door --triton-http 127.0.0.1:18000 --triton-grpc 127.0.0.1:18001 \
        --triton-metrics 127.0.0.1:18002 --http-port 8000 --grpc-port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from door.grpc_door import start_grpc_door
from door.http_door import start_http_door
from door.limits import DoorLimits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triton-http", required=True, help="Triton's private HTTP address, host:port")
    parser.add_argument("--triton-grpc", required=True, help="Triton's private gRPC address, host:port")
    parser.add_argument("--triton-metrics", required=True, help="Triton's private metrics address, host:port")
    parser.add_argument("--host", default="127.0.0.1", help="where the door listens (0.0.0.0 in a pod)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    defaults = DoorLimits()
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    parser.add_argument("--max-chunks", type=int, default=defaults.max_chunks)
    parser.add_argument("--max-headers", type=int, default=defaults.max_headers)
    parser.add_argument("--grace-s", type=float, default=5.0,
                        help="on SIGTERM, how long open requests may take to finish (Triton drains meanwhile)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    limits = DoorLimits(max_body_bytes=args.max_body_bytes, max_chunks=args.max_chunks, max_headers=args.max_headers)
    grpc_server = await start_grpc_door(args.host, args.grpc_port, args.triton_grpc, limits)
    runner, http = await start_http_door(args.host, args.http_port, args.triton_http, args.triton_metrics, limits,
                                         grace_s=args.grace_s)
    logging.getLogger("door").info("door on %s: HTTP %d, gRPC %d -> Triton %s / %s", args.host, args.http_port,
                                   args.grpc_port, args.triton_http, args.triton_grpc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # no new calls; open ones may finish within the grace period (both sides at once)
    await asyncio.gather(grpc_server.stop(grace=args.grace_s), runner.cleanup())
    await http.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(parse_args(argv)))
