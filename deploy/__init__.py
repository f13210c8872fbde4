"""Host-side tools that render, start and check deployments; none of it runs inside a model.

`triton` starts and stops a real tritonserver on a CPU machine, `openai_frontend` the
OpenAI-compatible server beside it, `local` is `make deploy`/`make stop`
(`python -m deploy start|stop`), `repository` renders a deployable model repository from the one
source `model_repository/`, `config_checks` checks a repository statically, `gpu/` renders the
GPU bundle (its configs and Dockerfile live beside the code), `replicas` runs several servers behind
HAProxy, and `manifests` renders and validates the Kubernetes manifests in `k8s/`. It may import `repo_paths`,
`scheduler`, `runtime`, `engine` (for names and the LLM contract) and `openai_server` (its
launcher's defaults), never `workloads`,
`simulator` or `loadtest`.
"""
