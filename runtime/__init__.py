"""Serving glue shared by the Triton models, the launcher and the tests (no Triton import)."""
