"""Offline scoring on Ray Data: ``flame-reward score|compare FILE --engine ray --actors N``.

The command reads rows, builds judge examples and writes records exactly as with the
local engine (the same code in :mod:`flame_reward.cli`, ``--resume`` included); only the
verdicts come from here: every row still to judge goes through one ``map_batches`` run on
an actor pool (``ray.data.ActorPoolStrategy(size=N)``), each actor holding one
:class:`~flame_reward.autorater.Autorater` for the whole run, and the results stream back
in input order (``preserve_order``), written a batch at a time as they arrive. Each result
carries its example's position and the driver checks the sequence, so a lost or repeated
row stops the run with an error instead of shifting verdicts onto wrong rows.

Examples cross into Arrow as JSON strings: rows of one file may disagree in their
columns' types, which Arrow's schema inference would reject.

``RAY_ADDRESS`` (or an already initialised Ray) picks the cluster; otherwise a local one
is started for the run and stopped after it. Each actor asks for ``--threads`` CPUs
(default 1) and, with ``--device cuda``, one GPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from flame_reward.errors import FlameRewardError, InvalidInput
from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar.jsonwire import result_from_json, result_to_json


class JudgeActor:
    """One Ray Data actor: loads the judge once, then judges batches of JSON examples."""

    def __init__(self, task: str, options: Mapping[str, Any]) -> None:
        from flame_reward.autorater import Autorater

        options = dict(options)
        self.task = task
        self.autorater = Autorater.from_pretrained(options.pop("model", None), **options)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        import numpy as np

        examples = [json.loads(text) for text in batch["example"]]
        results = self.autorater.judge(self.task, examples, on_error="return")
        return {"i": np.asarray(batch["i"]),
                "result": np.array([json.dumps(result_to_json(r)) for r in results], dtype=object)}


def _ray(progress: bool) -> tuple[Any, bool]:
    """The ``ray`` module, initialised; and whether this call started it (and must stop it)."""
    try:
        import ray
    except ImportError:
        raise InvalidInput("--engine", "ray needs the 'ray' extra: pip install 'flame-reward[ray]'") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=progress)
        started = True
    return ray, started


def judge_examples(task: str, examples: Sequence[Mapping[str, Any]], *, actors: int = 2,
                   model_options: Mapping[str, Any] | None = None, rows_per_call: int = 32,
                   cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0,
                   progress: bool = True) -> Iterator[Verdict | ItemError]:
    """Verdicts for ``examples`` from an actor pool of ``actors`` judges, yielded in input order
    (settings are checked now, the pool starts on the first ``next``)."""
    if actors < 1:
        raise InvalidInput("--actors", f"must be >= 1, got {actors}")
    return _stream(task, examples, actors, dict(model_options or {}), rows_per_call, cpus_per_actor,
                   gpus_per_actor, progress)


def _stream(task: str, examples: Sequence[Mapping[str, Any]], actors: int, model_options: dict[str, Any],
            rows_per_call: int, cpus_per_actor: float, gpus_per_actor: float,
            progress: bool) -> Iterator[Verdict | ItemError]:
    if not examples:
        return
    ray, started = _ray(progress)
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = progress
        items = [{"i": i, "example": json.dumps(ex, ensure_ascii=False)} for i, ex in enumerate(examples)]
        blocks = max(1, min(len(items), -(-len(items) // rows_per_call)))
        ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            JudgeActor, batch_size=rows_per_call, compute=ray.data.ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={"task": task, "options": model_options},
            num_cpus=cpus_per_actor, num_gpus=gpus_per_actor, batch_format="numpy")
        expected = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, text in zip(batch["i"], batch["result"]):
                if int(i) != expected:
                    raise FlameRewardError(f"Ray Data returned example {int(i)} where example {expected} was due; "
                                           "stopping rather than writing verdicts on the wrong rows")
                expected += 1
                yield result_from_json(json.loads(text), int(i))
        if expected != len(examples):
            raise FlameRewardError(f"Ray Data returned {expected} results for {len(examples)} examples")
    finally:
        if started:
            ray.shutdown()


def judge_rows(args: argparse.Namespace, task: str, examples: Sequence[Mapping[str, Any]]) -> Iterator[Verdict | ItemError]:
    """The ``--engine ray`` verdicts of ``flame-reward score|compare``: ``examples`` (every row
    still to judge, built as the local engine builds them) on ``args.actors`` actors with the
    command's model options, streamed back in order. A failure of the pool is a
    :class:`FlameRewardError`, which the command prints as one line."""
    if args.backend == "onnx" and (args.device or "cpu") != "cpu":
        raise InvalidInput("--backend", "--engine ray with --backend onnx runs on CPU actors only")
    options = {"model": args.model, "adapter": args.adapter, "device": args.device, "dtype": args.dtype,
               "batch_size": args.batch_size, "max_length": args.max_length, "threads": args.threads,
               "backend": args.backend, "quantize": args.quantize}
    stream = judge_examples(task, examples, actors=args.actors, model_options=options,
                            rows_per_call=max(args.batch_size * 4, 16), cpus_per_actor=float(args.threads or 1),
                            gpus_per_actor=1.0 if (args.device or "").startswith("cuda") else 0.0,
                            progress=not args.quiet)
    try:
        yield from stream
    except FlameRewardError:
        raise
    except Exception as exc:  # noqa: BLE001 (Ray's own errors: one line naming what failed)
        raise FlameRewardError(f"--engine ray: the actor pool failed: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


__all__ = ["JudgeActor", "judge_examples", "judge_rows"]
