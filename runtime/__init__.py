"""The request path that ships into the Triton python models: request checks and Llama-3
tokenization (preprocessing), incremental detokenization (postprocessing), the scheduler's request
life cycle (`relay`), every tensor contract between the models (`contracts`), the merging of the
LLM's streamed responses (`llm_stream`), its metric events (`scheduler_metrics`), the tensor
helpers the model.py files share (`triton_tensors`), the length predictor's serving side
(`length_predictor`: its tokenizer, version folders and ONNX session) and the Llama-3 instruct chat
template as ids (`chat_template`: built by the OpenAI server and the load tests, read back by the
request log).

This package (with `scheduler/`) is all the GPU container receives, so it stays small and light:
it may import `repo_paths` and `scheduler` only, never a host-side tool, torch or Triton itself
(the Triton seams are protocols that model.py fills and the tests fake).
"""
