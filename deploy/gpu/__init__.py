"""The GPU target: `capacity` (how many requests the scheduler admits into a TensorRT-LLM engine),
`bundle` (the rendered model repository, packages and scripts), `python -m deploy.gpu` (the CLI of
`make deploy TARGET=gpu`), and the GPU-only model configs and Dockerfile in this folder."""
