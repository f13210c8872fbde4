"""Stream an answer from the deployment over gRPC (`ltr_bls`, the default entry point; `--model
ensemble` for the ensemble). Ctrl-C frees the server's slot too: `ltr_bls` sees the cancelled
stream; the ensemble does not, so its request is stopped by id.

    python -m loadtest.client "What is the capital of France?" --max-tokens 64

The prompt goes as one user turn of the Llama-3 instruct chat template (`--prompt-format raw`: the
text alone, as a base model would read it).
"""

from __future__ import annotations

import argparse
import sys
import uuid

import tritonclient.grpc as grpcclient

from loadtest.grpc_stream import DEFAULT_MODEL, Chunk, stop_request, stream_generate
from loadtest.prompts import add_prompt_format_argument

STOPPED_BY_ID = "ensemble"  # the entry point whose client must stop a request by id (docs/faults.md)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--url", default="127.0.0.1:8001", help="gRPC host:port (GRPC_PORT of make deploy)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ltr_bls (default) or ensemble")
    parser.add_argument("--temperature", type=float)
    add_prompt_format_argument(parser)
    args = parser.parse_args(argv)
    optional = {} if args.temperature is None else {"temperature": args.temperature}
    client = grpcclient.InferenceServerClient(args.url)
    request_id = uuid.uuid4().hex
    tokens = 0
    try:
        for item in stream_generate(client, args.prompt, args.max_tokens, model=args.model, request_id=request_id,
                                    cancel_on_early_exit=args.model != STOPPED_BY_ID,
                                    prompt_format=args.prompt_format, **optional):
            if isinstance(item, str):
                print(f"\nerror: {item}", file=sys.stderr)
                return 1
            assert isinstance(item, Chunk)
            tokens += item.tokens
            print(item.text, end="", flush=True)
    except KeyboardInterrupt:  # free the server's slot too, not only this connection
        if args.model == STOPPED_BY_ID:  # the ensemble ignores a cancelled stream; ltr_bls needs nothing more
            stop_request(grpcclient.InferenceServerClient(args.url), request_id)
        print(f"\n[stopped after {tokens} tokens]", file=sys.stderr)
        return 130
    print(f"\n[{tokens} tokens]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
