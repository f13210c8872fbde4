"""Load against a running server: gRPC/HTTP clients (`grpc_stream`, `client`), trace replay with
client-side timing (`replay`), the locust load test (`locustfile.py`) and the served policy
comparison (`bench_serve`, which starts its own servers and sets the simulator's prediction beside
the measurement).

It may import everything below it: `repo_paths`, `scheduler`, `runtime`, `engine`, `predictor`,
`deploy`, `workloads` and `simulator`.
"""
