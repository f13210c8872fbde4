"""What the OpenAI server is configured with: the command line, with environment defaults where a
deployment passes a secret or a port (an API key does not belong on a command line)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

DEFAULT_PORT = 9000
DEFAULT_MODEL_NAME = "llama-3-8b-instruct"
API_KEY_ENV = "LTR_OPENAI_API_KEY"


@dataclass(frozen=True)
class Settings:
    triton_url: str = "127.0.0.1:8001"  # Triton's gRPC endpoint
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    model_name: str = DEFAULT_MODEL_NAME  # the one name /v1/models lists and requests must use
    ensemble: str = "ensemble"
    scheduler: str = "ltr_scheduler"  # where `stop` by request id goes
    api_key: str | None = None  # when set, requests need `Authorization: Bearer <key>`
    tokenizer: str | None = None  # as preprocessing's tokenizer_path: None = $LTR_TOKENIZER or the default file
    max_body_bytes: int = 1 << 20
    # None: the engine's limits, read from the preprocessing model's config when Triton is ready.
    max_prompt_tokens: int | None = None
    completions_default_max_tokens: int = 16  # OpenAI's and vLLM's default for /v1/completions
    stop_timeout_s: float = 10.0  # how long ending a request may take before its stream is dropped
    retry_after_s: int = 1  # Retry-After on 503 "server overloaded"


def parse_settings(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m openai_server", description=__doc__)
    parser.add_argument("--triton-url", default=Settings.triton_url, help="Triton gRPC host:port")
    parser.add_argument("--host", default=Settings.host)
    parser.add_argument("--port", type=int, default=int(os.environ.get("OPENAI_PORT", DEFAULT_PORT)))
    parser.add_argument("--model-name", default=Settings.model_name)
    parser.add_argument("--tokenizer", default=None, help="tokenizer.model file or HF checkpoint folder")
    parser.add_argument("--max-body-bytes", type=int, default=Settings.max_body_bytes)
    parser.add_argument("--max-prompt-tokens", type=int, default=None,
                        help="default: preprocessing's max_input_len, read from Triton")
    args = parser.parse_args(argv)
    return Settings(
        triton_url=args.triton_url, host=args.host, port=args.port, model_name=args.model_name,
        api_key=os.environ.get(API_KEY_ENV) or None, tokenizer=args.tokenizer,
        max_body_bytes=args.max_body_bytes, max_prompt_tokens=args.max_prompt_tokens,
    )
