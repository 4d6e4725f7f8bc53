"""Dynamic micro-batching with admission control: requests from many concurrent RPCs feed
the core in shared calls, and no request can hold the worker past its deadline.

Unit of work: one **judgment**, one example through the core (a pair of a pairwise task
is one judgment; the core scores it in both presentation orders).

* **Admission.** A request reserves all of its work, in judgments, before anything is
  queued (:meth:`MicroBatcher.reserve`; :meth:`MicroBatcher.submit` reserves exactly its
  examples). The queue holds at most ``max_queue`` reserved judgments not yet handed to
  the core; beyond that :class:`QueueFull` (the server answers RESOURCE_EXHAUSTED), and a
  request larger than the whole queue is refused outright. A multi-call request (a Rank's
  tournament rounds) reserves its upper bound once and draws its calls from it, so its
  later rounds are counted from the start.
* **Pieces.** The worker takes the oldest queued job, waits until ``max_batch_size``
  judgments are queued or ``max_wait_ms`` have passed since that job arrived, then takes
  a piece across the queued jobs: at most ``max_batch_size`` judgments,
  ``max_batch_chars`` characters, and what the recent pace of the core says fits in
  ``max_batch_seconds`` (always at least one judgment; at most :data:`FIRST_PIECE` until
  the pace is known). It
  calls the judge's ``judge(task, examples, on_error="return")`` once per task type. A
  larger job is judged piece by piece and goes to the back of the queue after each
  piece, so other requests are served between its pieces, and a job that is dropped
  frees the worker after at most the piece in the core.
* **Stopping.** Before each piece a job is dropped, never judged further, when its
  deadline has passed, its future was cancelled (the RPC's end cancels it), or its
  ``alive()`` check (the RPC's ``is_active``) says the caller is gone. A job's future
  stays cancellable until its last piece is judged.
* A core call that fails for a reason other than an item's input (item problems come back
  in the item's slot) is retried job by job, so one request cannot fail another.
* All calls into the core happen on the worker thread: the core needs no locking.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

from flame_reward.errors import FlameRewardError
from flame_reward.results import ItemError, Verdict
from flame_reward.sidecar.observability import BATCH_BUCKETS, Metrics, event


class QueueFull(FlameRewardError):
    """The queue holds ``max_queue`` judgments already (or the request alone exceeds it)."""


class DeadlineExpired(FlameRewardError):
    """The request's deadline passed before all its work was judged; the rest was dropped."""


class Closed(FlameRewardError):
    """The batcher is shutting down and accepts no more work."""


#: What the task template adds to an item's own text (the FLAMe instruction and the chat
#: template, about 150 tokens), in characters: part of an item's weight in the pace.
TEMPLATE_CHARS = 512
#: Weight of the newest call in the pace (an exponential moving average).
PACE_SMOOTHING = 0.5
#: Judgments in a piece before the first call has measured the pace.
FIRST_PIECE = 4


def example_chars(example: Any) -> int:
    """Characters of an example's text (string values and lists of strings): the unit of
    the per-piece character budget, a cheap stand-in for its tokens."""
    if not isinstance(example, Mapping):
        return 1
    total = 0
    for value in example.values():
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, (list, tuple)):
            total += sum(len(x) for x in value if isinstance(x, str))
    return max(1, total)


def _settle(future: Future, result: Any = None, exc: BaseException | None = None) -> bool:
    """Finish ``future`` unless it is already done (cancelled by its RPC, or failed)."""
    if future.done():
        return False
    try:
        if not future.set_running_or_notify_cancel():
            return False  # cancelled just now
    except RuntimeError:
        return False
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
    return True


class Reservation:
    """Room for one request's work in the queue, in judgments.

    Taken at admission; each :meth:`submit` queues a job drawn from it; judgments are
    given back as the worker hands them to the core (or drops them), and :meth:`close`
    gives back what was never submitted. Use it as a context manager.
    """

    def __init__(self, batcher: MicroBatcher, units: int, deadline: float | None, request_id: str,
                 alive: Callable[[], bool] | None) -> None:
        self._batcher = batcher
        self.free = units  # reserved and not yet submitted
        self.deadline = deadline
        self.request_id = request_id
        self.alive = alive

    def submit(self, task: str, examples: Sequence[Mapping[str, Any]]) -> Future:
        """Queue ``examples``; the future's result is one ``Verdict`` or ``ItemError`` per
        example, in order. More examples than are left reserved take extra room at once
        (:class:`QueueFull` when there is none)."""
        return self._batcher._enqueue(self, task, list(examples))

    def close(self) -> None:
        self._batcher._unreserve(self)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass(eq=False)
class Job:
    task: str
    examples: list[Mapping[str, Any]]
    reservation: Reservation
    chars: list[int]
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: float = 0.0  # when its first piece went to the core
    cursor: int = 0  # examples handed to the core so far
    results: list[Verdict | ItemError] = field(default_factory=list)
    failed: bool = False

    @property
    def deadline(self) -> float | None:
        return self.reservation.deadline

    @property
    def request_id(self) -> str:
        return self.reservation.request_id

    @property
    def size(self) -> int:
        return len(self.examples)

    @property
    def remaining(self) -> int:
        return len(self.examples) - self.cursor

    def stop_reason(self, now: float) -> str | None:
        """Why this job must not be judged further, or ``None``."""
        if self.deadline is not None and now >= self.deadline:
            return "deadline"
        if self.future.done():
            return "cancelled"
        alive = self.reservation.alive
        if alive is not None and not alive():
            return "cancelled"
        return None


def _malloc_trim() -> Callable[[], Any]:
    """glibc's ``malloc_trim(0)``: hands freed heap pages back to the OS, so a burst of
    large inputs does not leave resident memory high (a no-op without glibc)."""
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        fn.argtypes = [ctypes.c_size_t]
        return lambda: fn(0)
    except (OSError, AttributeError):
        return lambda: None


#: After this many idle seconds following work, the worker returns freed memory to the OS.
IDLE_TRIM_SECONDS = 0.5


class MicroBatcher:
    """Collects jobs from many threads and runs them through ``judge.judge`` in pieces."""

    def __init__(
        self,
        judge: Any,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        max_batch_chars: int = 65536,
        max_batch_seconds: float | None = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if max_batch_chars < 1:
            raise ValueError(f"max_batch_chars must be >= 1, got {max_batch_chars}")
        self.judge = judge
        self.max_batch_size = max_batch_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max_queue
        self.max_batch_chars = max_batch_chars
        self.max_batch_seconds = max_batch_seconds if max_batch_seconds and max_batch_seconds > 0 else None
        #: Seconds per weighted character (its characters plus TEMPLATE_CHARS per judgment)
        #: of recent core calls; None until the first call.
        self.pace: float | None = None
        self.metrics = metrics or Metrics()
        self._queue: collections.deque[Job] = collections.deque()
        self._reserved = 0  # judgments admitted and not yet handed to the core
        self._queued = 0  # judgments in queued jobs not yet handed to the core
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False  # a piece is in the core
        self._worked = False  # work was done since the last trim
        self._trim = _malloc_trim()
        self._worker = threading.Thread(target=self._run, name="flame-reward-batcher", daemon=True)
        self._worker.start()

    # -- producers ------------------------------------------------------------------------
    @property
    def pending_items(self) -> int:
        """Judgments admitted (queued or reserved by a running request) and not yet judged."""
        return self._reserved

    @property
    def running(self) -> bool:
        return self._worker.is_alive()

    @property
    def idle(self) -> bool:
        """Nothing admitted, queued or in the core."""
        with self._cond:
            return not self._queue and not self._busy and self._reserved == 0

    def reserve(
        self,
        units: int,
        *,
        deadline: float | None = None,
        request_id: str = "",
        alive: Callable[[], bool] | None = None,
        block: bool = False,
    ) -> Reservation:
        """Admit a request of ``units`` judgments (see the module docstring). ``deadline``
        is a ``time.monotonic()`` instant. ``block=True`` waits for room (until the
        deadline, or while ``alive()``) instead of raising :class:`QueueFull` (streams
        apply back-pressure this way)."""
        units = max(0, int(units))
        if units > self.max_queue:
            self.metrics.inc("rejected_total", reason="too_large")
            raise QueueFull(f"{units} judgments can never fit: the queue holds at most {self.max_queue}")
        with self._cond:
            while True:
                if self._closed:
                    raise Closed("the server is shutting down")
                if self._reserved + units <= self.max_queue:
                    break
                if not block:
                    self.metrics.inc("rejected_total", reason="queue_full")
                    raise QueueFull(f"queue full ({self._reserved} judgments waiting, limit {self.max_queue}); "
                                    "retry later")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExpired("deadline passed while waiting for room in the queue")
                if alive is not None and not alive():
                    raise CancelledError()
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
            self._reserved += units
        return Reservation(self, units, deadline, request_id, alive)

    def submit(
        self,
        task: str,
        examples: Sequence[Mapping[str, Any]],
        *,
        deadline: float | None = None,
        request_id: str = "",
        alive: Callable[[], bool] | None = None,
        block: bool = False,
    ) -> Future:
        """Reserve room for ``examples`` and queue them as one job (see :meth:`reserve`)."""
        examples = list(examples)
        with self.reserve(len(examples), deadline=deadline, request_id=request_id, alive=alive,
                          block=block) as reservation:
            return reservation.submit(task, examples)

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting work, finish the queued jobs that are still wanted, stop the
        worker. Returns whether the worker stopped within ``timeout``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout)
        return not self._worker.is_alive()

    def _enqueue(self, reservation: Reservation, task: str, examples: list[Mapping[str, Any]]) -> Future:
        job = Job(task, examples, reservation, [example_chars(ex) for ex in examples])
        if not examples:
            _settle(job.future, result=[])
            return job.future
        n = len(examples)
        with self._cond:
            if self._closed:
                raise Closed("the server is shutting down")
            if n > reservation.free:
                extra = n - reservation.free
                if self._reserved + extra > self.max_queue:
                    self.metrics.inc("rejected_total", reason="queue_full")
                    raise QueueFull(f"queue full ({self._reserved} judgments waiting, limit {self.max_queue}); "
                                    "retry later")
                self._reserved += extra
                reservation.free += extra
            reservation.free -= n
            self._queue.append(job)
            self._queued += n
            self._cond.notify_all()
        job.future.add_done_callback(lambda f: self._on_cancel(job, f))
        return job.future

    def _release_rest(self, job: Job) -> None:
        """Give back the judgments of ``job`` not yet handed to the core (lock held)."""
        self._queued -= job.remaining
        self._reserved -= job.remaining
        job.cursor = job.size
        self._cond.notify_all()

    def _on_cancel(self, job: Job, future: Future) -> None:
        """A cancelled job gives its room back at once, not when the worker reaches it."""
        if not future.cancelled():
            return
        with self._cond:
            if not job.remaining:
                return
            try:
                self._queue.remove(job)
            except ValueError:
                queued = False  # in the core now: the worker drops it after this piece
            else:
                queued = True
            self._release_rest(job)
        if queued:
            self._drop(job, job.stop_reason(time.monotonic()) or "cancelled")

    def _unreserve(self, reservation: Reservation) -> None:
        with self._cond:
            self._reserved -= reservation.free
            reservation.free = 0
            self._cond.notify_all()

    # -- the worker -----------------------------------------------------------------------
    def _take(self) -> tuple[list[tuple[Job, int, int]], list[tuple[Job, str]]] | None:
        """The next pieces to judge, ``(job, start, end)``, and the jobs to drop (both
        empty: the worker has been idle a while after work, time to trim memory)."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if self._worked:
                    if not self._cond.wait(IDLE_TRIM_SECONDS) and not self._queue:
                        self._worked = False
                        return [], []
                else:
                    self._cond.wait()
            first = self._queue[0]
            while self._queued < self.max_batch_size and not self._closed:
                remaining = first.enqueued + self.max_wait - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            now = time.monotonic()
            pieces: list[tuple[Job, int, int]] = []
            stopped: list[tuple[Job, str]] = []
            size = chars = 0
            weight_budget = None  # in weighted characters, from the pace
            limit = self.max_batch_size
            if self.max_batch_seconds is not None:
                if self.pace:
                    weight_budget = self.max_batch_seconds / self.pace
                else:
                    limit = min(limit, FIRST_PIECE)
            while self._queue and size < limit:
                job = self._queue[0]
                reason = job.stop_reason(now)
                if reason is not None:
                    self._queue.popleft()
                    self._release_rest(job)
                    stopped.append((job, reason))
                    continue
                take = c = 0
                while job.cursor + take < job.size and size + take < limit:
                    n = job.chars[job.cursor + take]
                    if size + take > 0 and (chars + c + n > self.max_batch_chars or (
                            weight_budget is not None
                            and chars + c + n + TEMPLATE_CHARS * (size + take + 1) > weight_budget)):
                        break
                    take += 1
                    c += n
                if take == 0:
                    break  # the piece's budget is spent
                self._queue.popleft()  # back of the queue after this piece, if work is left
                pieces.append((job, job.cursor, job.cursor + take))
                if not job.started:
                    job.started = now
                    self.metrics.observe("queue_wait_seconds", now - job.enqueued)
                job.cursor += take
                size += take
                chars += c
                self._queued -= take
                self._reserved -= take
                if job.remaining:
                    break  # the budget is spent
            self._busy = bool(pieces)
            self._worked = True
            self._cond.notify_all()  # room for blocked producers
            return pieces, stopped

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            pieces, stopped = taken
            if not pieces and not stopped:
                self._trim()
                continue
            for job, reason in stopped:
                self._drop(job, reason)
            try:
                by_task: dict[str, list[tuple[Job, int, int]]] = {}
                for piece in pieces:
                    by_task.setdefault(piece[0].task, []).append(piece)
                for task, group in by_task.items():
                    self._judge(task, group)
                for job, _, _ in pieces:
                    self._after_piece(job)
            except BaseException as exc:  # noqa: BLE001 (a bug here must not strand every waiting RPC)
                for job, _, _ in pieces:
                    self._fail(job, exc)
                event("worker_error", level=40, error=repr(exc))
            with self._cond:
                self._busy = False

    def _after_piece(self, job: Job) -> None:
        if job.failed:
            return  # its exception is set and its reservation given back
        if len(job.results) == job.size:
            _settle(job.future, result=job.results)
            return
        with self._cond:
            reason = job.stop_reason(time.monotonic())
            if reason is None:
                self._queue.append(job)
                self._cond.notify_all()
                return
            self._release_rest(job)
        self._drop(job, reason)

    def _drop(self, job: Job, reason: str) -> None:
        _settle(job.future, exc=DeadlineExpired("deadline exceeded before the request was fully scored")
                if reason == "deadline" else CancelledError("the request was cancelled"))
        self.metrics.inc("dropped_total", reason=reason)
        event("dropped", request_id=job.request_id, reason=reason, judged=len(job.results),
              skipped=job.size - len(job.results), queued_ms=round((time.monotonic() - job.enqueued) * 1000, 2))

    def _fail(self, job: Job, exc: BaseException) -> None:
        """End an in-flight job (not in the queue) with ``exc``."""
        if job.failed:
            return
        job.failed = True
        with self._cond:
            self._release_rest(job)
        _settle(job.future, exc=exc)

    def _judge(self, task: str, pieces: list[tuple[Job, int, int]]) -> None:
        examples = [ex for job, start, end in pieces for ex in job.examples[start:end]]
        started = time.perf_counter()
        try:
            results = list(self.judge.judge(task, examples, on_error="return"))
            if len(results) != len(examples):
                raise FlameRewardError(f"the judge returned {len(results)} results for {len(examples)} examples")
        except Exception as exc:
            if len(pieces) > 1:  # isolate the failing request; the others still get answers
                for piece in pieces:
                    self._judge(task, [piece])
                return
            job = pieces[0][0]
            self._fail(job, exc)
            event("batch_failed", level=40, task=task, request_id=job.request_id, error=repr(exc))
            return
        seconds = time.perf_counter() - started
        weight = sum(job.chars[i] for job, start, end in pieces for i in range(start, end))
        observed = seconds / (weight + TEMPLATE_CHARS * len(examples))
        self.pace = observed if self.pace is None else PACE_SMOOTHING * observed + (1 - PACE_SMOOTHING) * self.pace
        self.metrics.inc("batches_total", task=task)
        self.metrics.inc("items_total", len(examples), task=task)
        self.metrics.observe("batch_items", len(examples), BATCH_BUCKETS)
        errors = 0
        cursor = 0
        heads: dict[str, int] = {}
        for job, start, end in pieces:
            for local in range(start, end):
                r = results[cursor]
                cursor += 1
                if isinstance(r, ItemError):
                    errors += 1
                    r = ItemError(local, r.field, r.message)
                elif getattr(r, "head", None) is not None:
                    heads[r.head] = heads.get(r.head, 0) + 1
                job.results.append(r)
        if errors:
            self.metrics.inc("item_errors_total", errors, task=task)
        # Verdicts split by whether a trained head took part, so an operator sees how much of
        # the traffic falls on the routes the heads were trained for.
        for name, count in heads.items():
            self.metrics.inc("head_verdicts_total", count, task=task, head=name)
        raw = len(examples) - errors - sum(heads.values())
        if raw:
            self.metrics.inc("raw_verdicts_total", raw, task=task)
        event("batch", task=task, requests=len(pieces), batch_size=len(examples), item_errors=errors,
              head_verdicts=sum(heads.values()),
              latency_ms=round(seconds * 1000, 2),
              max_queue_ms=round(max(j.started - j.enqueued for j, _, _ in pieces) * 1000, 2))


__all__ = ["Closed", "DeadlineExpired", "FIRST_PIECE", "Job", "MicroBatcher", "QueueFull", "Reservation",
           "TEMPLATE_CHARS", "example_chars"]
