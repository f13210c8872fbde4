"""Generation-length ranking predictor: data, training, evaluation and export
(predictor/README.md).

What serving runs (tokenizer, version folders, ONNX session) is `runtime.length_predictor`, with
the rest of what ships into Triton; this package uses it, so evaluation runs exactly the server's
preprocessing, and the Triton models never import this package. The package
may import `repo_paths` and `runtime` (the Llama-3 tokenizer that counts the label tokens) only.
"""
