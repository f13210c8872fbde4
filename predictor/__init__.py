"""Generation-length ranking predictor: data, training, evaluation, export and runtime.

The runtime (`predictor.runtime`) is the only module the Triton models import; it needs numpy,
tokenizers and onnxruntime but never torch or transformers, so serving stays light.
"""
