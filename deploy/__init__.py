"""Host-side tools that render, start and check deployments; none of it runs inside a model.

`triton` starts and stops a real tritonserver on a CPU machine, `local` is `make deploy`/`make stop`
(`python -m deploy start|stop`), `repository` renders a deployable model repository from the one
source `model_repository/`, `config_checks` checks a repository statically, and `gpu/` renders the
GPU bundle (its configs and Dockerfile live beside the code). It may import `repo_paths`,
`scheduler`, `runtime` and `engine` (for names and the LLM contract), never `workloads`,
`simulator` or `loadtest`.
"""
