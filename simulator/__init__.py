"""Trace-driven discrete-event simulator of the deployment (scheduler + batching engine)."""
