"""Generation-length ranking predictor: data, training, evaluation, export and runtime
(predictor/README.md).

The runtime (`predictor.runtime`) is the only module the Triton models import; it needs numpy,
tokenizers and onnxruntime but never torch or transformers, so serving stays light. The package
may import `repo_paths` and `runtime` (the Llama-3 tokenizer that counts the label tokens) only.
"""
