"""Dynamic micro-batching: requests from many concurrent RPCs feed the core in one call.

Each RPC submits a :class:`Job` (a task type and its examples) and waits on its future.
One worker thread takes the oldest job, waits until ``max_batch_size`` items are queued
or ``max_wait_ms`` have passed since that job arrived, takes every queued job that fits,
and calls the judge's ``judge(task, examples, on_error="return")`` **once per task type**
in the batch. The core sorts the combined items by length and splits them into forward
passes, so concurrent requests share padding-efficient batches; results are handed back
to each job in its own order, item errors re-indexed to the job's items.

Under load the worker is busy while new jobs queue, so batches fill by themselves and
the wait costs nothing; a lone request waits at most ``max_wait_ms``.

* The queue is bounded in items (``max_queue``): :meth:`MicroBatcher.submit` raises
  :class:`QueueFull` instead of queuing more (the server answers RESOURCE_EXHAUSTED).
* A job whose deadline passed (or whose RPC was cancelled) before its batch runs is
  dropped, never scored.
* A batch whose core call fails for a reason other than an item's input (which the core
  returns in the item's slot) is retried job by job, so one request cannot fail another.
* All calls into the core happen on the worker thread: the core needs no locking.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flame_reward.errors import FlameRewardError
from flame_reward.results import ItemError, Verdict
from flame_reward.server.observability import BATCH_BUCKETS, Metrics, event


class QueueFull(FlameRewardError):
    """The micro-batching queue holds ``max_queue`` items already."""


class DeadlineExpired(FlameRewardError):
    """The request's deadline passed before its batch ran; it was not scored."""


class Closed(FlameRewardError):
    """The batcher is shutting down and accepts no more work."""


@dataclass
class Job:
    task: str
    examples: list[Mapping[str, Any]]
    deadline: float | None = None  # time.monotonic()
    request_id: str = ""
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: float = 0.0

    @property
    def size(self) -> int:
        return max(1, len(self.examples))


class MicroBatcher:
    """Collects jobs from many threads and runs them through ``judge.judge`` in batches."""

    def __init__(
        self,
        judge: Any,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.judge = judge
        self.max_batch_size = max_batch_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self._queue: collections.deque[Job] = collections.deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="flame-reward-batcher", daemon=True)
        self._worker.start()

    # -- producers ------------------------------------------------------------------------
    @property
    def pending_items(self) -> int:
        return self._pending

    def submit(
        self,
        task: str,
        examples: Sequence[Mapping[str, Any]],
        *,
        deadline: float | None = None,
        request_id: str = "",
        block: bool = False,
    ) -> Future:
        """Queue ``examples`` of ``task``; the future's result is one ``Verdict`` or
        ``ItemError`` per example. ``deadline`` is a ``time.monotonic()`` instant.
        ``block=True`` waits for room (until the deadline) instead of raising
        :class:`QueueFull` (used by streams, which apply back-pressure)."""
        job = Job(task, list(examples), deadline, request_id)
        with self._cond:
            while True:
                if self._closed:
                    raise Closed("the server is shutting down")
                # A job larger than the whole queue is still accepted into an empty queue.
                if self._pending == 0 or self._pending + job.size <= self.max_queue:
                    break
                if not block:
                    self.metrics.inc("rejected_total", reason="queue_full")
                    raise QueueFull(f"queue full ({self._pending} items waiting, limit {self.max_queue}); retry later")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExpired("deadline passed while waiting for room in the queue")
                self._cond.wait(remaining if remaining is not None else 1.0)
            self._queue.append(job)
            self._pending += job.size
            self._cond.notify_all()
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting jobs, finish the queued ones, and stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout)

    # -- the worker -----------------------------------------------------------------------
    def _take(self) -> list[Job] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue[0]
            while self._pending < self.max_batch_size and not self._closed:
                remaining = first.enqueued + self.max_wait - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[Job] = []
            size = 0
            while self._queue:
                job = self._queue[0]
                if batch and size + job.size > self.max_batch_size:
                    break
                self._queue.popleft()
                self._pending -= job.size
                batch.append(job)
                size += job.size
            self._cond.notify_all()  # room for blocked producers
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            now = time.monotonic()
            live: dict[str, list[Job]] = {}
            for job in batch:
                if not job.future.set_running_or_notify_cancel():
                    self.metrics.inc("dropped_total", reason="cancelled")
                    event("dropped", request_id=job.request_id, reason="cancelled")
                    continue
                if job.deadline is not None and now >= job.deadline:
                    job.future.set_exception(DeadlineExpired("deadline exceeded before the request was scored"))
                    self.metrics.inc("dropped_total", reason="deadline")
                    event("dropped", request_id=job.request_id, reason="deadline",
                          queued_ms=round((now - job.enqueued) * 1000, 2))
                    continue
                job.started = now
                self.metrics.observe("queue_wait_seconds", now - job.enqueued)
                live.setdefault(job.task, []).append(job)
            for task, jobs in live.items():
                self._judge(task, jobs)

    def _judge(self, task: str, jobs: list[Job]) -> None:
        examples = [ex for job in jobs for ex in job.examples]
        started = time.perf_counter()
        try:
            results = list(self.judge.judge(task, examples, on_error="return")) if examples else []
            if len(results) != len(examples):
                raise FlameRewardError(f"the judge returned {len(results)} results for {len(examples)} examples")
        except Exception as exc:
            if len(jobs) > 1:  # isolate the failing request; the others still get answers
                for job in jobs:
                    self._judge(task, [job])
                return
            jobs[0].future.set_exception(exc)
            event("batch_failed", level=40, task=task, request_id=jobs[0].request_id, error=repr(exc))
            return
        seconds = time.perf_counter() - started
        self.metrics.inc("batches_total", task=task)
        self.metrics.inc("items_total", len(examples), task=task)
        self.metrics.observe("batch_items", len(examples), BATCH_BUCKETS)
        errors = 0
        cursor = 0
        for job in jobs:
            part: list[Verdict | ItemError] = []
            for local in range(len(job.examples)):
                r = results[cursor]
                cursor += 1
                if isinstance(r, ItemError):
                    errors += 1
                    r = ItemError(local, r.field, r.message)
                part.append(r)
            job.future.set_result(part)
        if errors:
            self.metrics.inc("item_errors_total", errors, task=task)
        event("batch", task=task, requests=len(jobs), batch_size=len(examples), item_errors=errors,
              latency_ms=round(seconds * 1000, 2),
              max_queue_ms=round(max(j.started - j.enqueued for j in jobs) * 1000, 2))


__all__ = ["Closed", "DeadlineExpired", "Job", "MicroBatcher", "QueueFull"]
