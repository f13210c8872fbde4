"""The GPU target: `capacity` (how many requests the scheduler admits into a TensorRT-LLM engine),
`placement` (the predictor's GPU and what it leaves the KV cache), `predictor_profile` (the
predictor's TensorRT shapes, for both GPU variants), `trtllm_parameters` (NVIDIA's parameter list
for the pinned backend, and its refresh), `bundle` (the rendered model repository, packages and
scripts), `follow` (the container's log until ready or failed), `python -m deploy.gpu` (the CLI of
`make deploy TARGET=gpu`), and the GPU-only model configs, Dockerfile and its library check in this
folder."""
