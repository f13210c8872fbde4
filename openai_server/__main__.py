"""`python -m openai_server --triton-url 127.0.0.1:8001 --port 9000`: the OpenAI-compatible server
on uvicorn (one process, one event loop: the work is I/O, and Triton does the computing)."""

from __future__ import annotations

import logging

import uvicorn

from openai_server.app import create_app
from openai_server.settings import parse_settings


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
