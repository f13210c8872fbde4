"""An OpenAI-compatible HTTP front door (`/v1/chat/completions`, `/v1/completions`, `/v1/models`)
in front of the Triton ensemble, so that clients written for the OpenAI API reach the scheduler
unchanged: `python -m openai_server` (started by `make deploy`, see deploy/openai_frontend.py).

Modules: `settings` (what it is configured with), `protocol` (the OpenAI request and response
objects), `chat_template` (Llama-3 instruct, as token ids), `stop_strings` (OpenAI's `stop`),
`errors` (OpenAI's error shape, ensemble messages to HTTP statuses), `ensemble_client` (Triton over
one gRPC channel, and stopping a request by id), `generation` (one request's life: deltas, finish
reason, usage, stop on early end), `metrics` (its Prometheus metrics), `app` (the FastAPI routes).

It may import `repo_paths` and `runtime` (the Llama-3 tokenizer) only; nothing below it imports it,
and nothing of it ships into a Triton model.
"""
