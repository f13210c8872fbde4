"""Benchmarks of this project's own overhead: the ensemble against a direct LLM call
(`serving_overhead`) and the scheduler's cost per request (`scheduler_cost`). They print their
figures and write them under results/; tests never time anything. May import every package."""
