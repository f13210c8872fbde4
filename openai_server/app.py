"""The HTTP side: FastAPI routes in OpenAI's shapes, SSE streaming, and the watch on the client.

A request is checked (API key, body size, fields, model, prompt length) before anything is sent to
Triton. Its answer is then read from the ensemble; the HTTP status waits for the ensemble's first
response, so that a request the ensemble rejects ("server overloaded", a bad parameter) gets its
own status (503 + Retry-After, 400) even when it asked for a stream, instead of a 200 followed by
an error event. From the moment the request is sent until its answer is complete, a client that
goes away ends it in the scheduler (Generation.close -> `stop` by request id).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from openai_server import errors
from openai_server.chat_template import chat_prompt_ids, ranking_text
from openai_server.ensemble_client import Backend, EnsembleError, EnsembleRequest, RequestLimits, TritonEnsembleClient
from openai_server.errors import APIError
from openai_server.generation import Generation, Piece
from openai_server.metrics import ServerMetrics
from openai_server.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    InvalidRequest,
    ResponseIds,
    chat_chunk,
    chat_completion,
    completion,
    completion_chunk,
    model_list,
    parse_request,
    usage,
    usage_chunk,
)
from openai_server.settings import Settings
from runtime.llama3_tokenizer import Tokenizer, load_tokenizer

log = logging.getLogger("openai_server")
T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client disconnected before its answer was complete."""


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, or ClientGone (and `work` cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    raise ClientGone


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class GenerationStream(StreamingResponse):
    """An SSE response that ends its generation however the response ends: finished, client gone
    (Starlette cancels the body), or cancelled before the body was ever started."""

    def __init__(self, content: AsyncIterator[bytes], generation: Generation) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **generation.headers()})
        self.generation = generation

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.generation.close()


class OpenAIServer:
    """The state behind the routes: settings, the Triton backend, the tokenizer, the metrics."""

    def __init__(self, settings: Settings, backend: Backend, tokenizer: Tokenizer, metrics: ServerMetrics) -> None:
        self.settings = settings
        self.backend = backend
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.started = int(time.time())
        self._limits: RequestLimits | None = None

    async def limits(self) -> RequestLimits:
        if self._limits is None:
            try:
                self._limits = await self.backend.request_limits()
            except EnsembleError as exc:
                raise errors.backend_unavailable(exc.message, self.settings.retry_after_s) from None
        return self._limits

    # --- checks before Triton -------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        key = self.settings.api_key
        if key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise errors.unauthorized()

    async def read_json(self, request: Request) -> Any:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise errors.bad_request("invalid Content-Length")
            if int(declared) > limit:
                raise errors.too_large(limit)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise errors.too_large(limit)
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise errors.bad_request("the request body is not valid JSON") from None

    def check_model(self, name: str) -> None:
        if name != self.settings.model_name:
            raise errors.unknown_model(name, self.settings.model_name)

    async def check_prompt_length(self, prompt_ids: list[int]) -> RequestLimits:
        limits = await self.limits()
        limit = min(limits.max_input_len, self.settings.max_prompt_tokens or limits.max_input_len)
        if len(prompt_ids) > limit:
            raise errors.bad_request(f"prompt is {len(prompt_ids)} tokens, over the limit of {limit}")
        return limits

    # --- serving --------------------------------------------------------------------------------

    def ensemble_error(self, exc: EnsembleError) -> APIError:
        if exc.unavailable:
            return errors.backend_unavailable(exc.message, self.settings.retry_after_s)
        return errors.from_ensemble(exc.message, self.settings.retry_after_s)

    async def serve(self, request: Request, req: ChatCompletionRequest | CompletionRequest, ids: ResponseIds,
                    prompt_ids: list[int], text: str, max_tokens: int, chat: bool) -> Response:
        if req.ignored_fields:
            log.warning("request %s: fields not implemented here were ignored: %s", ids.id, ", ".join(req.ignored_fields))
        ensemble_request = EnsembleRequest(
            request_id=ids.id, text=text, prompt_ids=prompt_ids, max_tokens=max_tokens,
            temperature=req.temperature, top_p=req.top_p, seed=req.seed, stop_words=tuple(req.stop_strings),
            frequency_penalty=req.frequency_penalty, presence_penalty=req.presence_penalty,
            repetition_penalty=req.repetition_penalty, min_tokens=req.min_tokens,
            return_log_probs=req.wants_log_probs,
        )
        generation = Generation(self.backend, ensemble_request, len(prompt_ids))
        try:
            if not req.stream:
                text_out, log_probs = await until_disconnect(request, self._collect(generation))
                use = usage(generation.prompt_tokens, generation.completion_tokens)
                build = chat_completion if chat else completion
                return JSONResponse(build(ids, text_out, generation.finish_reason or "stop", use,
                                          log_probs if req.wants_log_probs else None), headers=generation.headers())
            first = await until_disconnect(request, generation.next_piece())
        except ClientGone:
            generation.close()
            self.metrics.disconnects.inc()
            return Response(status_code=499)  # nobody is there to read it
        except EnsembleError as exc:
            generation.close()
            raise self.ensemble_error(exc) from None
        except BaseException:
            generation.close()
            raise
        events = self._events(generation, first, ids, chat, req.include_usage_chunk, req.wants_log_probs)
        return GenerationStream(events, generation)

    async def _collect(self, generation: Generation) -> tuple[str, list[tuple[str, float]]]:
        parts, log_probs = [], []
        try:
            while (piece := await generation.next_piece()) is not None:
                parts.append(piece.text)
                log_probs.extend(piece.log_probs)
        finally:
            generation.close()
        return "".join(parts), log_probs

    async def _events(self, generation: Generation, first: Piece | None, ids: ResponseIds, chat: bool,
                      include_usage: bool, with_log_probs: bool = False) -> AsyncIterator[bytes]:
        offset = 0  # completions: where the next piece's text starts

        def content(text: str, finish: str | None = None, log_probs: tuple = ()) -> bytes:
            nonlocal offset
            lps = list(log_probs) if with_log_probs and finish is None else None
            if chat:
                return sse(chat_chunk(ids, {"content": text} if text or finish is None else {}, finish,
                                      with_usage_field=include_usage, logprobs=lps))
            chunk = sse(completion_chunk(ids, text, finish, with_usage_field=include_usage, logprobs=lps,
                                         offset=offset))
            offset += len(text)
            return chunk

        self.metrics.open_streams.inc()
        complete = False
        try:
            head = sse(chat_chunk(ids, {"role": "assistant", "content": ""}, with_usage_field=include_usage)) if chat else b""
            piece = first
            while piece is not None:
                out = head + (content(piece.text, log_probs=piece.log_probs) if piece.text or piece.log_probs else b"")
                head = b""
                if piece.finish_reason is not None:
                    out += content("", piece.finish_reason)
                if out:
                    yield out
                if piece.finish_reason is not None:
                    break
                piece = await generation.next_piece()
            if include_usage:
                obj = "chat.completion.chunk" if chat else "text_completion"
                yield sse(usage_chunk(ids, obj, usage(generation.prompt_tokens, generation.completion_tokens)))
            yield SSE_DONE
            complete = True
        except EnsembleError as exc:
            error = self.ensemble_error(exc)
            self.metrics.errors.labels(str(error.status), error.type).inc()
            yield sse(error.body()) + SSE_DONE
            complete = True
        finally:
            self.metrics.open_streams.dec()
            if not complete:
                self.metrics.disconnects.inc()
            generation.close()


def create_app(settings: Settings, backend: Backend | None = None, tokenizer: Tokenizer | None = None) -> FastAPI:
    """The app; without `backend`, it opens the Triton channel at start-up and closes it at
    shutdown (tests pass a fake backend)."""
    metrics = ServerMetrics()
    server: OpenAIServer | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal server
        own = backend is None
        chosen = backend or TritonEnsembleClient(settings.triton_url, settings.ensemble, settings.scheduler,
                                                 settings.stop_timeout_s, on_end=metrics.record_early_end)
        server = OpenAIServer(settings, chosen, tokenizer or load_tokenizer(settings.tokenizer), metrics)
        app.state.server = server
        try:
            yield
        finally:
            if own:
                await chosen.close()

    app = FastAPI(title="OpenAI-compatible API (LTR-scheduled Triton ensemble)", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)

    def current() -> OpenAIServer:
        assert server is not None, "the app's lifespan has not started"
        return server

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        metrics.errors.labels(str(exc.status), exc.type).inc()
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(InvalidRequest)
    async def invalid(request: Request, exc: InvalidRequest) -> JSONResponse:
        return await api_error(request, errors.bad_request(str(exc)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return await api_error(request, errors.internal(f"internal error: {type(exc).__name__}"))

    @app.get("/health")
    async def health() -> Response:
        ready = await current().backend.ready()
        return JSONResponse({"status": "ok" if ready else "triton not ready"}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        s = current()
        s.authorize(request)
        return JSONResponse(model_list(s.settings.model_name, s.started))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        metrics.requests.labels("chat.completions").inc()
        s = current()
        s.authorize(request)
        req = parse_request(ChatCompletionRequest, await s.read_json(request))
        s.check_model(req.model)
        messages = req.chat_messages()
        prompt_ids = await asyncio.to_thread(chat_prompt_ids, s.tokenizer, messages)
        limits = await s.check_prompt_length(prompt_ids)
        ids = ResponseIds("chatcmpl", uuid.uuid4().hex, s.settings.model_name)
        return await s.serve(request, req, ids, prompt_ids, ranking_text(messages),
                             req.requested_max_tokens(limits.max_output_len), chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        metrics.requests.labels("completions").inc()
        s = current()
        s.authorize(request)
        req = parse_request(CompletionRequest, await s.read_json(request))
        s.check_model(req.model)
        prompt = req.single_prompt()
        if isinstance(prompt, str):
            prompt_ids = await asyncio.to_thread(_text_prompt_ids, s.tokenizer, prompt)
            text = prompt
        else:
            prompt_ids, text = list(prompt), await asyncio.to_thread(_decoded, s.tokenizer, prompt)
        await s.check_prompt_length(prompt_ids)
        ids = ResponseIds("cmpl", uuid.uuid4().hex, s.settings.model_name)
        return await s.serve(request, req, ids, prompt_ids, text,
                             req.requested_max_tokens(s.settings.completions_default_max_tokens), chat=False)

    return app


def _text_prompt_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """As preprocessing tokenizes text_input: BOS, then the text as plain text."""
    return [tokenizer.bos_id] + tokenizer.encode(text)


def _decoded(tokenizer: Tokenizer, ids: list[int]) -> str:
    try:
        return tokenizer.decode(ids) or "(empty)"
    except Exception:  # noqa: BLE001  ids out of range: the ensemble rejects them with its message
        return "(token ids)"
