"""The JSON form of verdicts, item errors and judge requests (HTTP face, Ray Serve, Ray Data).

One encoding everywhere a verdict crosses a JSON or Arrow boundary, so a verdict read
back is the :class:`~flame_reward.results.Verdict` the core produced (floats survive a
JSON round trip exactly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flame_reward.errors import InvalidInput
from flame_reward.results import ItemError, Verdict


def result_to_json(result: Verdict | ItemError) -> dict[str, Any]:
    """A verdict as ``Verdict.to_dict()``; an item error as ``{"error", "field", "index"}``."""
    if isinstance(result, ItemError):
        return {"error": f"{result.field}: {result.message}", "field": result.field, "index": result.index}
    return result.to_dict()


def result_from_json(data: Mapping[str, Any], index: int = 0) -> Verdict | ItemError:
    """The inverse of :func:`result_to_json`."""
    if "error" in data:
        field = str(data.get("field") or "request")
        message = str(data["error"])
        prefix = f"{field}: "
        return ItemError(int(data.get("index", index)), field,
                         message[len(prefix):] if message.startswith(prefix) else message)
    return Verdict(task=str(data["task"]), label=str(data["label"]), score=float(data["score"]),
                   distribution={str(k): float(v) for k, v in data["distribution"].items()},
                   orders=tuple({str(k): float(v) for k, v in o.items()} for o in data.get("orders", ())),
                   tokens=int(data.get("tokens", 0)), truncated=tuple(data.get("truncated", ())),
                   head=None if data.get("head") is None else str(data["head"]))


def check_task(name: str) -> str:
    """``name`` if it is a registered task type that can be scored; else an error naming ``task``."""
    from flame_reward.errors import UnknownTaskType
    from flame_reward.tasks.registry import get_task_type

    try:
        task = get_task_type(name)
    except UnknownTaskType as exc:
        raise InvalidInput("task", str(exc)) from None
    if task.generative:
        raise InvalidInput("task", f"{name!r} is open-ended (generation only) and cannot be scored")
    return name


def parse_judge_request(body: Any, max_items: int) -> tuple[str, list[dict[str, Any]]]:
    """``{"task": NAME, "examples": [{...}, ...]}`` -> (task, examples); errors name the field."""
    if not isinstance(body, Mapping):
        raise InvalidInput("body", f"expected a JSON object, got {type(body).__name__}")
    task = body.get("task", "pointwise")
    if not isinstance(task, str) or not task:
        raise InvalidInput("task", f"expected a task type name, got {task!r}")
    check_task(task)
    examples = body.get("examples")
    if not isinstance(examples, Sequence) or isinstance(examples, (str, bytes)):
        raise InvalidInput("examples", "expected a list of example objects")
    if not examples:
        raise InvalidInput("examples", "no items in the request")
    if len(examples) > max_items:
        raise InvalidInput("examples", f"{len(examples)} items exceed the server's limit of {max_items} per request")
    for i, ex in enumerate(examples):
        if not isinstance(ex, Mapping):
            raise InvalidInput(f"examples[{i}]", f"expected an object, got {type(ex).__name__}")
    return task, [dict(ex) for ex in examples]


__all__ = ["check_task", "parse_judge_request", "result_from_json", "result_to_json"]
