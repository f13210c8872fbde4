"""What is measured and how it is reported, shared by the simulator and the load tests: request
traces (`traces`: text workloads with their true answer lengths, production traces), the
predictor's scores for them (`scores`), per-request timing metrics (`metrics`) and the tables and
plots of the results (`report`).

It may import `repo_paths`, `runtime` (the Llama-3 tokenizer for token counts) and `predictor`
(scores, Kendall's tau); `simulator` and `loadtest` import it, never the other way round.
"""
