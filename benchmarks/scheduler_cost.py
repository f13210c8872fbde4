"""Microseconds per enqueue + admission with 10,000 requests waiting (the scheduler's hot path).

    python -m benchmarks.scheduler_cost
"""

from __future__ import annotations

import argparse
import random
import time

from scheduler import QueuedRequest, RequestQueue, StarvationConfig, make_policy


def measure(policy: str, waiting: int = 10_000, operations: int = 50_000, seed: int = 0) -> dict:
    rng = random.Random(seed)
    queue = RequestQueue(make_policy(policy), StarvationConfig(threshold=200, quantum=10))
    for i in range(waiting):
        queue.push(QueuedRequest(f"w{i}", score=rng.random(), max_tokens=rng.randint(1, 2000)))
    requests = [QueuedRequest(f"n{i}", score=rng.random(), max_tokens=rng.randint(1, 2000)) for i in range(operations)]
    start = time.perf_counter()
    for request in requests:
        queue.push(request)
        queue.pop()
    elapsed = time.perf_counter() - start
    assert len(queue) == waiting
    return {
        "policy": policy,
        "waiting": waiting,
        "operations": operations,
        "us_per_enqueue_and_admission": round(elapsed / operations * 1e6, 2),
        "promoted": queue.stats().promoted_total,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waiting", type=int, default=10_000)
    args = parser.parse_args(argv)
    rows = [measure(policy, args.waiting) for policy in ("fcfs", "ltr", "oracle")]
    for row in rows:
        print(f"{row['policy']:>6}: {row['us_per_enqueue_and_admission']:.2f} us per enqueue+admission "
              f"with {row['waiting']} waiting")
    return rows


if __name__ == "__main__":
    main()
