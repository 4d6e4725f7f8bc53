"""Per-job cost of the HumanEval sandbox: wall milliseconds per job, serial and parallel.

    python benchmarks/sandbox_overhead.py [--n 40] [--workers 2] [--out FILE]

Three kinds of job, each run ``--n`` times: an empty program (pure start-up and tear-down
cost), HumanEval/0's hidden test on its canonical solution (what final scoring runs per
candidate; each copy differs by a comment, as the harness runs identical programs once) and the prompt's docstring examples as asserts (what the ranking signals run).
Each kind is run one job at a time (``workers=1``: latency) and ``--workers`` at a time
(throughput). Reported: wall milliseconds per job, and CPU milliseconds per job of all
sandbox processes (user + system, from ``RUSAGE_CHILDREN``), the steadier figure on a
shared machine. Figures depend on the machine and its load: say where they ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

from flame_reward.humaneval.examples import problem_example_asserts
from flame_reward.humaneval.harness import evaluate_candidates
from flame_reward.humaneval.problems import load_problems
from flame_reward.humaneval.sandbox import Job, assert_job, host_protections, run_many


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(run, n: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per job."""
    cpu, started = _children_cpu(), time.perf_counter()
    run()
    return 1000 * (time.perf_counter() - started) / n, 1000 * (_children_cpu() - cpu) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="jobs per kind and setting")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    problem = load_problems()["HumanEval/0"]
    program = problem.prompt + problem.canonical_solution
    examples = problem_example_asserts(problem)
    try:  # the example jobs name the trusted prompt and entry point where the API has them
        example_job = assert_job(program, examples, 1.0, prelude=problem.prompt,
                                 entry_points=(problem.entry_point,))
    except TypeError:
        example_job = assert_job(program, examples, 1.0)
    kinds = {
        "empty program": lambda workers: run_many([Job("pass")] * args.n, workers),
        "HumanEval/0 hidden test": lambda workers: evaluate_candidates(
            problem, [f"{problem.canonical_solution}\n# {i}\n" for i in range(args.n)], workers=workers),
        "HumanEval/0 examples (asserts)": lambda workers: run_many([example_job] * args.n, workers),
    }
    run_many([Job("pass")], 1)  # warm the host probes
    rows = []
    for name, run in kinds.items():
        for workers in (1, args.workers):
            wall, cpu = _timed(lambda: run(workers), args.n)
            rows.append({"kind": name, "workers": workers, "wall_ms_per_job": round(wall, 1),
                         "cpu_ms_per_job": round(cpu, 1)})
            print(f"{name:>32}  workers={workers}  wall {wall:7.1f} ms/job  cpu {cpu:6.1f} ms/job", flush=True)
    result = {"rows": rows, "n": args.n, "cpus": os.cpu_count(), "load": os.getloadavg(),
              "python": platform.python_version(), "protections": host_protections()}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
