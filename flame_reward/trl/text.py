"""TRL prompts, completions and references (strings or conversations) as the text a judge reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class Unjudgeable(Exception):
    """A TRL value the judge cannot read; ``field`` and ``message`` say which and why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _content_text(content: Any, field: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):  # content parts: [{"type": "text", "text": ...}, ...]
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, Mapping) and "type" in part:
                texts.append(f"[{part['type']}]")
            else:
                raise Unjudgeable(field, f"message content part must be text, got {type(part).__name__}")
        return "".join(texts)
    raise Unjudgeable(field, f"message content must be a string or a list of parts, got {type(content).__name__}")


def _message_text(msg: Any, field: str) -> tuple[str, str]:
    if not isinstance(msg, Mapping):
        raise Unjudgeable(field, f"a conversation must be a list of messages (dicts), got {type(msg).__name__}")
    text = _content_text(msg.get("content"), field)
    for call in msg.get("tool_calls") or []:
        fn = call.get("function", call) if isinstance(call, Mapping) else {}
        args = fn.get("arguments", "")
        args = args if isinstance(args, str) else json.dumps(args, sort_keys=True, default=str)
        text += ("\n" if text else "") + f"[tool call] {fn.get('name', '?')}({args})"
    return str(msg.get("role", "")), text


def to_text(value: Any, field: str) -> str:
    """The text the judge reads for a TRL prompt, completion or reference.

    Args:
        value: a string, one message (a dict with ``content``) or a conversation (a list of
            messages, as TRL's conversational datasets give them).
        field: the name used in the error (``prompt``, ``completion``, a column name).

    Returns:
        A string is used as is. A conversation of one message is its content (content parts
        joined, tool calls shown as ``[tool call] name(args)``); several messages become
        ``role: content`` blocks. Anything else, ``None`` and text that is empty after
        stripping raise :class:`Unjudgeable` (the reward function scores it as invalid).
    """
    if value is None:
        raise Unjudgeable(field, "is None")
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping) and "content" in value:
        text = _message_text(value, field)[1]
    elif isinstance(value, (list, tuple)):
        parts = [_message_text(m, field) for m in value]
        text = parts[0][1] if len(parts) == 1 else "\n\n".join(f"{role}: {t}" for role, t in parts)
    else:
        raise Unjudgeable(field, f"must be a string or a list of messages, got {type(value).__name__}")
    if not text.strip():
        raise Unjudgeable(field, "is empty")
    return text


def prompt_key(prompt: Any) -> str:
    """A hashable key that is equal for equal prompts (strings or conversations)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)


__all__ = ["Unjudgeable", "prompt_key", "to_text"]
