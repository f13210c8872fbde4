"""Trace-driven discrete-event simulation of the deployment: the served `scheduler/` queue and
admission in front of `engine/`'s batching core, on a virtual clock (`sim`), the simulator-only
preemptive MLFQ policy (`policies`), and the paper's sweep (`sweep`, `python -m simulator`).

It may import `repo_paths`, `scheduler`, `engine`, `predictor`, `deploy` (the served defaults from
config.pbtxt) and `workloads`; never `loadtest`.
"""
