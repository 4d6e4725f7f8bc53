"""The ``flame-reward`` command line: a few lines over the library for each command.

:func:`build_parser` asks every plugin for its subcommands through the
``register_commands`` hook; this module is itself a built-in plugin contributing
``compare``, ``score``, ``tasks`` and ``demo``, and the other built-in commands live beside
the parts they drive (``train``, ``eval-pairs``, ``serve``, ...). Errors a user can act on
print one line (``flame-reward: error: ...``) and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from flame_reward.errors import FlameRewardError, InvalidInput
from flame_reward.hookspecs import hookimpl
from flame_reward.model_options import add_model_options, load_judge

EXIT_ERROR = 2
log = logging.getLogger("flame_reward.cli")


def _parse_map(items: Sequence[str], task: Any) -> dict[str, str]:
    """``--map FIELD=COLUMN`` pairs, each FIELD a field or option of ``task``."""
    known = [f.name for f in task.fields] + [o for o in task.options if o not in ("allow_tie", "tie_margin")]
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            raise InvalidInput("--map", f"expected FIELD=COLUMN, got {item!r}")
        if name not in known:
            raise InvalidInput("--map", f"task {task.name!r} has no field {name!r} (fields: {', '.join(known)})")
        if name in mapping:
            raise InvalidInput("--map", f"field {name!r} is mapped twice")
        mapping[name] = column
    return mapping


#: The flag that sets each task option, for naming it in an error.
_OPTION_FLAGS = {"scale": "--scale", "labels": "--labels", "allow_tie": "--allow-tie",
                 "tie_margin": "--tie-margin", "criteria": "--criteria"}


def _check_rows_args(args: argparse.Namespace, task: Any, defaults: dict[str, Any]) -> None:
    """Every flag of a rows command checked before any file is opened or model loaded."""
    for flag, value in (("--batch-size", args.batch_size), ("--max-length", args.max_length), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise InvalidInput(flag, f"must be at least 1, got {value}")
    if getattr(args, "engine", "local") == "ray" and args.actors < 1:
        raise InvalidInput("--actors", f"must be at least 1, got {args.actors}")
    for name in defaults:
        if name not in task.options:
            raise InvalidInput(_OPTION_FLAGS.get(name, name), f"task {task.name!r} has no such option "
                                                                f"(its options: {', '.join(task.options)})")
    try:
        task.validate_options(dict(defaults))
    except InvalidInput as exc:
        raise InvalidInput(_OPTION_FLAGS.get(exc.field, exc.field), exc.reason) from None
    if args.output == "":
        raise InvalidInput("--output", "is empty")
    if args.resume and args.output in (None, "-"):
        raise InvalidInput("--resume", "needs -o FILE: an earlier run's output to continue")


def _install_sigterm() -> Callable[[], None]:
    """Make SIGTERM stop a run the way Ctrl-C does (finished rows stay written); returns the undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _run_rows(args: argparse.Namespace, task: str, defaults: dict[str, Any]) -> int:
    """Judge every row of ``args.input`` and write it, with its verdict or its error, as it goes.

    Everything that can fail as a whole (flags, the input, the output) is checked before
    the model loads; the model loads when the first row needs it. Rows are written and
    flushed a batch at a time, so an interrupted run keeps what it finished, and
    ``--resume`` skips the rows an earlier run's output already holds.
    """
    from flame_reward import io as row_io
    from flame_reward.errors import DataError
    from flame_reward.tasks.registry import get_task_type

    task_type = get_task_type(task)
    mapping = _parse_map(args.map or [], task_type)
    _check_rows_args(args, task_type, defaults)
    with row_io.open_rows(args.input) as source:
        if row_io.same_file(args.input, args.output):
            raise DataError(f"output {args.output!r} is the input file; writing it would destroy the input")
        written = row_io.read_written(args.output) if args.resume else row_io.Written()
        if written.tasks - {task_type.name}:
            raise DataError(f"--resume: {args.output!r} holds verdicts of task {sorted(written.tasks)[0]!r}, "
                            f"not {task_type.name!r}")
        total = None if args.quiet else row_io.count_rows(args.input)
        with row_io.RowWriter(args.output, keep=written.keep) as out:
            run = _RowRun(args, task_type, defaults, mapping, out, written, total)
            undo = _install_sigterm()
            try:
                run.judge_all(source)
            except KeyboardInterrupt:
                run.report(interrupted=True)
                return 130
            finally:
                undo()
                run.close()
    run.report()
    return 1 if (args.strict and run.bad + written.errors) else 0


class _RowRun:
    """One pass of a rows command: skip what an earlier run wrote, judge and write the rest."""

    def __init__(self, args: argparse.Namespace, task: Any, defaults: dict[str, Any], mapping: dict[str, str],
                 out: Any, written: Any, total: int | None) -> None:
        self.args, self.task, self.defaults, self.mapping = args, task, defaults, mapping
        self.out, self.written, self.total = out, written, total
        self.judge: Any = None
        self.bar: Any = None  # made at the first judged batch, so a refused resume prints only its error
        self.ok = self.bad = self.skipped = 0
        self.heads = 0  # verdicts a trained verdict head took part in (Verdict.head set)
        self.started = time.perf_counter()

    def judge_all(self, source: Any) -> None:
        from flame_reward.errors import DataError

        done = iter(zip(self.written.lines, self.written.digests))
        expect = next(done, None)
        batch: list[Any] = []
        for row in source:
            if expect is not None:
                line, digest = expect
                if row.line != line or row.digest() != digest:
                    raise DataError(self._mismatch(row.line, line))
                self.skipped += 1
                expect = next(done, None)
                continue
            batch.append(row)
            if len(batch) >= self.args.batch_size and getattr(self.args, "engine", "local") == "local":  # ray: one pool run
                self._judge_batch(batch)
                batch = []
        self._judge_batch(batch)
        if expect is not None:
            raise DataError(f"--resume: {self.args.output!r} holds a row for input line {expect[0]}, "
                            f"which the input {source.name!r} does not have; was the input changed?")

    def _mismatch(self, line: int, expected: int) -> str:
        where = repr(self.args.output)
        if line < expected:
            return f"--resume: {where} has no row for input line {line}, which comes before rows it holds; cannot resume in order"
        if line > expected:
            return (f"--resume: {where} holds a row for input line {expected}, which the input does not have; "
                    "was the input changed?")
        return f"--resume: input line {line} differs from its row in {where}; was the input changed?"

    def _example(self, data: dict[str, Any]) -> dict[str, Any]:
        example = {**self.defaults, **data}
        for name, column in self.mapping.items():
            if column in data:
                example[name] = data[column]
        return example

    def _judge_batch(self, batch: list[Any]) -> None:
        if not batch:
            return
        verdicts = iter(self._verdicts([self._example(r.data) for r in batch if r.data is not None]))
        records = []
        for row in batch:
            if row.data is None:
                records.append(row.record({}))
                self.bad += 1
            else:
                v = next(verdicts)
                if hasattr(v, "score"):
                    records.append(row.record({"flame_reward": v.to_dict()}))
                    self.ok += 1
                    if getattr(v, "head", None) is not None:
                        self.heads += 1
                else:
                    records.append(row.record({"error": v if isinstance(v, str) else v.to_dict()["error"]}))
                    self.bad += 1
            if len(records) >= self.args.batch_size:  # the ray engine's stream is written as it comes
                self._flush(records)
                records = []
        self._flush(records)

    def _flush(self, records: list[Any]) -> None:
        if records:
            self.out.write_rows(records)
            self._progress(len(records))

    def _progress(self, rows: int) -> None:
        if self.bar is None:
            from flame_reward.progress import progress_bar

            self.bar = progress_bar(total=self.total, desc=f"{self.task.name} rows", enabled=not self.args.quiet, unit="row")
            self.bar.update(self.skipped)
        self.bar.update(rows)

    def _verdicts(self, examples: list[dict[str, Any]]) -> list[Any]:
        if not examples:
            return []
        if getattr(self.args, "engine", "local") == "ray":  # verdicts stream back in order from the actor pool
            from flame_reward.integrations.ray_data import judge_rows

            return judge_rows(self.args, self.task.name, examples)  # type: ignore[return-value]
        if self.judge is None:
            self.judge = load_judge(self.args)
        try:
            return self.judge.judge(self.task, examples, on_error="return")
        except FlameRewardError:
            raise
        except Exception:  # noqa: BLE001 - one row the core cannot take must not cost its batch
            return [self._one(example) for example in examples]

    def _one(self, example: dict[str, Any]) -> Any:
        try:
            return self.judge.judge(self.task, [example], on_error="return")[0]
        except FlameRewardError:
            raise
        except Exception as exc:  # noqa: BLE001 - kept as this row's error, the run goes on
            log.warning("judging a row failed: %s: %s", type(exc).__name__, exc)
            return f"judge failed on this row: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def report(self, interrupted: bool = False) -> None:
        name, output = self.task.name, self.args.output or "stdout"
        elapsed = time.perf_counter() - self.started
        resumed = f", {self.skipped} already in {output} (skipped)" if self.skipped else ""
        if interrupted:
            print(f"{name}: interrupted after {self.ok + self.bad} rows this run{resumed}; {output} keeps every "
                  f"finished row ({self.out.rows + self.skipped} in all); rerun with --resume to continue",
                  file=sys.stderr)
            return
        print(f"{name}: {self.ok} rows judged, {self.bad} rows with errors (kept in the output with 'error'), "
              f"{self.ok + self.bad} in total{resumed}, {self.heads} of {self.ok} verdicts by a trained head, "
              f"{elapsed:.1f}s", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    defaults: dict[str, Any] = {}
    if args.allow_tie:
        defaults["allow_tie"] = True
    if args.tie_margin:
        defaults["tie_margin"] = args.tie_margin
    if args.criteria:
        defaults["criteria"] = args.criteria
    return _run_rows(args, args.task or "pairwise", defaults)


_SCALE = re.compile(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*")


def cmd_score(args: argparse.Namespace) -> int:
    defaults: dict[str, Any] = {}
    if args.scale is not None:
        m = _SCALE.fullmatch(args.scale)
        if not m:
            raise InvalidInput("--scale", f"expected LOW-HIGH such as 1-5, got {args.scale!r}")
        defaults["scale"] = [int(m.group(1)), int(m.group(2))]
    if args.labels is not None:
        defaults["labels"] = [x.strip() for x in args.labels.split(",")]
    if args.criteria:
        defaults["criteria"] = args.criteria
    return _run_rows(args, args.task or "pointwise", defaults)


def cmd_tasks(args: argparse.Namespace) -> int:
    from flame_reward.plugins import get_plugins
    from flame_reward.tasks.registry import list_task_types

    types = list_task_types()
    if args.json:
        print(json.dumps({name: {"description": t.description, "fields": [f.name for f in t.fields],
                                 "module": type(t).__module__} for name, t in types.items()}, indent=2))
        return 0
    width = max(len(n) for n in types)
    for name, t in types.items():
        fields = ", ".join(f.name + ("" if f.required else "?") for f in t.fields)
        print(f"{name:<{width}}  {t.description}\n{'':<{width}}  fields: {fields}  [{type(t).__module__}]")
    plugins = [p for p in get_plugins() if p.get("distribution")]
    if plugins:
        print("\nplugins: " + ", ".join(f"{p['distribution']} {p.get('version', '')}".strip() for p in plugins))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flame_reward.demo import run_demo

    return run_demo(args)


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``compare``, ``score``, ``tasks`` and ``demo``."""
    sub = subparsers

    def rows_command(name: str, help_: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("input", help="JSONL, JSONL.gz or JSON-array file of rows ('-' for stdin)")
        p.add_argument("-o", "--output", default=None,
                       help="output JSONL, written a batch at a time as rows are judged (default: stdout)")
        p.add_argument("--resume", action="store_true",
                       help="continue an interrupted run: keep the rows already in -o FILE, judge and append the rest")
        p.add_argument("--task", default=None, help="task type (see 'flame-reward tasks')")
        p.add_argument("--map", action="append", metavar="FIELD=COLUMN", help="read task FIELD from input COLUMN (repeatable)")
        p.add_argument("--criteria", default=None, help="evaluation criteria replacing the task's default")
        p.add_argument("--strict", action="store_true", help="exit 1 when any row had an error")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local (default), or ray: Ray Data on an actor pool (the 'ray' extra; RAY_ADDRESS picks "
                            "a cluster), the same output rows in the same order")
        p.add_argument("--actors", type=int, default=2, help="with --engine ray: judge actors, each with its own model")
        add_model_options(p)
        p.set_defaults(fn=fn)
        return p

    p = rows_command("compare", "Pairwise verdicts (P(A better), both orders) for rows with prompt/response_a/response_b.", cmd_compare)
    p.add_argument("--allow-tie", action="store_true", help="let the judge answer 'tie'")
    p.add_argument("--tie-margin", type=float, default=0.0, help="call it a tie when |P(A)-P(B)| <= margin")
    p = rows_command("score", "Pointwise ratings or classification labels for rows with prompt/response.", cmd_score)
    p.add_argument("--scale", default=None, help="pointwise scale LOW-HIGH (default 1-5)")
    p.add_argument("--labels", default=None, help="classification labels, comma-separated (default yes,no)")

    p = sub.add_parser("tasks", help="List registered task types (built-ins and plugins).")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_tasks)

    p = sub.add_parser("demo", help="Judge real human-labelled preference pairs and print accuracy.")
    p.add_argument("--n", type=int, default=200, help="number of pairs in total, split evenly over the sets (default 200)")
    p.add_argument("--sets", default="hh-helpful,hh-harmless", help="comma-separated pairwise sets (default: hh-helpful,hh-harmless)")
    p.add_argument("--split", default="dev", choices=["dev", "train", "all"], help="which split to draw from (default dev)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    add_model_options(p)
    p.set_defaults(fn=cmd_demo, max_length=1024)


def build_parser() -> argparse.ArgumentParser:
    """The top parser, with every plugin's subcommands (built-ins first)."""
    from flame_reward.plugins import get_plugin_manager

    parser = argparse.ArgumentParser(prog="flame-reward", description="FLAMe-style LLM autorater for RLHF.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    sub = parser.add_subparsers(dest="command", required=True)
    get_plugin_manager().hook.register_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
    try:
        return int(args.fn(args) or 0)
    except FlameRewardError as exc:
        print(f"flame-reward: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("flame-reward: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
