"""Turn the examples shown in a HumanEval prompt into executable assert statements.

Only the prompt is read (the function's signature and docstring); hidden tests never are.
HumanEval's docstrings show examples in many informal ways; the recognised forms are:

* ``doctest``: ``>>> expr`` followed by the expected output on the next line(s); or
  ``>>> f(x) == y`` with no output line (the line is the assertion itself). An empty
  output means ``None``, as in doctest.
* ``arrow``: ``f(x) ➞ y``, ``f(x) => y``, ``f(x) ==> y``, ``f(x) -> y``, ``f(x) == y``,
  also behind ``#`` (``f(x)  # => y``); ``f(x) returns y``; ``f(x) should return y``.
  A worked answer such as ``f(x) -> 19 - 5 - 6 = 8`` keeps what follows the last ``=``.
* ``assign``: ``f(x) = y``. Docstrings also use ``=`` for definitions (``tri(1) = 3`` in
  a recurrence), so when the docstring has an "Example(s):" heading only lines after the
  last such heading count, and chained ``=`` lines are skipped.
* ``for_output``: ``For lst = [1, 2] the output should be 3`` (also "the result should
  be"); names must be the function's parameters.
* ``io_block``: ``Input: ...`` (positional values, ``name = value`` pairs, or
  ``name : value`` lines below it) followed by ``Output: y``; and ``param = value`` lines
  followed by a ``return y`` line.

Arguments and expected values must be Python literals (``true``/``false`` are read as
booleans). Two repairs are made where the reading is unambiguous: a call to a function
name that the prompt never defines (``grade_equation`` in ``numerical_letter_grade``'s
docstring) is read as a call to the entry point, and bare words passed as arguments
(``is_happy(abcd)``) are read as strings unless they name a parameter. Anything else that
does not parse is skipped rather than guessed.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import tokenize
from dataclasses import dataclass
from typing import Iterable, Protocol

__all__ = ["PromptExample", "extract_examples", "example_asserts", "problem_example_asserts"]


@dataclass(frozen=True)
class PromptExample:
    """One example from a prompt: ``call`` should evaluate to ``expected``.

    ``expected`` is ``None`` for the doctest form whose expression is itself a check
    (``>>> f(x) == y``); ``line`` is the 1-based line of the prompt it was read from.
    """

    call: str
    expected: str | None
    form: str
    line: int

    @property
    def assertion(self) -> str:
        """An ``assert`` statement that holds iff the example holds."""
        if self.expected is None:
            return f"assert {self.call}"
        value = ast.literal_eval(self.expected)
        if value is None:
            return f"assert {self.call} is None"
        if isinstance(value, float):
            # Examples print rounded floats; exact equality would reject correct code.
            return f"assert abs({self.call} - {self.expected}) < 1e-6"
        return f"assert {self.call} == {self.expected}"


def _one_tuples(examples: list[PromptExample]) -> list[PromptExample]:
    """Read ``(x)`` as the 1-tuple ``(x,)`` when the function's other examples return tuples.

    ``bf("Earth", "Mercury") ==> ("Venus")`` sits between tuple results: the parentheses
    mark a tuple, as the docstring says, not a parenthesised string.
    """
    values = [_value(e.expected) for e in examples]
    if not any(isinstance(v, tuple) for v in values):
        return examples
    out = []
    for example, value in zip(examples, values):
        text = example.expected or ""
        if not isinstance(value, tuple) and re.fullmatch(r"\(.*\)", text.strip(), re.S):
            inner = text.strip()[1:-1].strip()
            if _literal_source(inner) is not None:
                example = PromptExample(example.call, f"({inner},)", example.form, example.line)
        out.append(example)
    return out


def _value(expected: str | None) -> object:
    return None if expected is None else ast.literal_eval(expected)


class _HasPrompt(Protocol):
    @property
    def prompt(self) -> str: ...

    @property
    def entry_point(self) -> str: ...


def extract_examples(prompt: str, entry_point: str) -> list[PromptExample]:
    """The examples of ``entry_point``'s docstring in ``prompt``, in order, without duplicates."""
    start = re.search(rf"^[ \t]*def\s+{re.escape(entry_point)}\s*\(", prompt, re.M)
    if start is None:
        return []
    first_line = prompt.count("\n", 0, start.start()) + 1
    lines = prompt[start.start() :].split("\n")
    context = _Context.build(prompt, entry_point, lines)
    found: list[PromptExample] = []
    consumed: set[int] = set()
    for parser in (_doctests, _for_output, _io_blocks, _arrows):
        for index, example in parser(context, consumed):
            if example is not None:
                found.append(
                    PromptExample(example.call, example.expected, example.form, first_line + index)
                )
    found.sort(key=lambda e: e.line)
    found = _one_tuples(found)
    unique: dict[str, PromptExample] = {}
    for example in found:
        unique.setdefault(example.assertion, example)
    return list(unique.values())


def example_asserts(prompt: str, entry_point: str) -> list[str]:
    """Assert statements for the examples in ``prompt`` (see :func:`extract_examples`)."""
    return [example.assertion for example in extract_examples(prompt, entry_point)]


def problem_example_asserts(problem: _HasPrompt) -> list[str]:
    """:func:`example_asserts` of a problem; reads only ``prompt`` and ``entry_point``."""
    return example_asserts(problem.prompt, problem.entry_point)


# --------------------------------------------------------------------------------------


@dataclass
class _Context:
    entry_point: str
    lines: list[str]
    params: list[str]
    defined: set[str]
    last_heading: int | None
    alias: str | None

    @classmethod
    def build(cls, prompt: str, entry_point: str, lines: list[str]) -> _Context:
        params: list[str] = []
        defined: set[str] = set()
        try:
            tree = ast.parse(prompt)
        except SyntaxError:
            tree = None
        if tree is not None:
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.add(node.name)
                    if node.name == entry_point and not isinstance(node, ast.ClassDef):
                        params = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        aliases = set()
        for line in lines:
            prefix = _LINE_PREFIX.match(line)
            called = re.match(r"([A-Za-z_]\w*)\s*\(", line[prefix.end() if prefix else 0 :])
            if called and called.group(1) != entry_point:
                aliases.add(called.group(1))
        aliases = {
            name for name in aliases
            if name not in defined and not hasattr(builtins, name) and not keyword.iskeyword(name)
            and name not in params and len(name) > 1
        }
        last_heading = None
        for index, line in enumerate(lines):
            text = line.strip().lower().rstrip(":").strip()
            if "example" in text and (line.strip().endswith(":") or text in ("example", "examples")):
                last_heading = index
        # A single undefined name called at line starts can only be the entry point renamed.
        alias = aliases.pop() if len(aliases) == 1 else None
        return cls(entry_point, lines, params, defined, last_heading, alias)


@dataclass(frozen=True)
class _Found:
    call: str
    expected: str | None
    form: str


_Hit = tuple[int, "_Found | None"]


# ---- doctest -------------------------------------------------------------------------


def _doctests(ctx: _Context, consumed: set[int]) -> Iterable[_Hit]:
    lines = ctx.lines
    index = 0
    while index < len(lines):
        match = re.match(r"\s*>>>\s?(.*)$", lines[index])
        if not match:
            index += 1
            continue
        start = index
        source = [match.group(1)]
        index += 1
        while index < len(lines) and re.match(r"\s*\.\.\.(\s|$)", lines[index]):
            source.append(re.sub(r"^\s*\.\.\.\s?", "", lines[index]))
            index += 1
        output: list[str] = []
        while index < len(lines):
            text = lines[index].strip()
            if not text or text.startswith(">>>") or text.startswith(('"""', "'''")):
                break
            for quote in ('"""', "'''"):
                if text.endswith(quote):
                    text = text[: -len(quote)].rstrip()
            output.append(text)
            index += 1
        consumed.update(range(start, index))
        yield start, _doctest_example(ctx, "\n".join(source), "\n".join(output))


def _doctest_example(ctx: _Context, source: str, output: str) -> _Found | None:
    expression = _strip_comment_tokens(source)
    if expression is None:
        return None
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return None
    if not _calls(tree, ctx.entry_point):
        return None
    if output:
        expected = _literal_source(output)
        return _Found(expression, expected, "doctest") if expected is not None else None
    if isinstance(tree, ast.Compare):
        return _Found(expression, None, "doctest")
    if isinstance(tree, ast.Subscript):
        # `>>> f(x) [1, 2]`: a missing `==` between the call and its result.
        split = _split_call(expression, 0, ctx)
        if split is not None:
            call, end = split
            expected = _literal_source(expression[end:])
            if expected is not None:
                return _Found(call, expected, "doctest")
        return None
    return _Found(expression, "None", "doctest")  # doctest prints nothing for None


def _calls(tree: ast.AST, name: str) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
        for node in ast.walk(tree)
    )


def _strip_comment_tokens(source: str) -> str | None:
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source.strip()
    kept = [t for t in tokens if t.type != tokenize.COMMENT]
    try:
        return tokenize.untokenize(kept).strip()
    except ValueError:
        return None


# ---- "For x = ... the output should be y" ---------------------------------------------

_FOR_OUTPUT = re.compile(
    r"^\s*for\s+(?P<args>.+?)[\s,]+the\s+(?:output|result)\s+should\s+be\s+(?P<expected>.+)$",
    re.I,
)


def _for_output(ctx: _Context, consumed: set[int]) -> Iterable[_Hit]:
    for index, line in enumerate(ctx.lines):
        if index in consumed:
            continue
        match = _FOR_OUTPUT.match(line)
        if not match:
            continue
        consumed.add(index)
        call = _call_from_arguments(ctx, match.group("args"), trim=True)
        expected = _clean_expected(match.group("expected"))
        yield index, _Found(call, expected, "for_output") if call and expected else None


# ---- Input:/Output: blocks and `param = value` ... `return y` ------------------------

_INPUT = re.compile(r"^\s*input\s*:\s*(?P<rest>.*)$", re.I)
_OUTPUT = re.compile(r"^\s*(?:output\s*:|return\s*=?)\s*(?P<rest>\S.*)$", re.I)
_NAMED_VALUE = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*[:=]\s*(?P<value>\S.*)$")


def _io_blocks(ctx: _Context, consumed: set[int]) -> Iterable[_Hit]:
    lines = ctx.lines
    pending: str | None = None  # argument text of the input seen last
    named: list[tuple[str, str]] = []  # `name : value` lines collected under a bare Input:
    collecting = False
    start = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        if index in consumed:
            index += 1
            continue
        input_match = _INPUT.match(line)
        output_match = _OUTPUT.match(line)
        named_match = _NAMED_VALUE.match(line)
        if input_match:
            start = index
            rest = input_match.group("rest").strip()
            pending, named, collecting = (rest or None), [], not rest
        elif output_match and (pending is not None or named):
            text, index = _take_balanced(lines, index, output_match.group("rest"))
            if pending is None:
                pending = ", ".join(f"{name}={value}" for name, value in named)
            call = _call_from_arguments(ctx, pending, trim=False)
            expected = _clean_expected(text)
            consumed.update(range(start, index + 1))
            yield start, _Found(call, expected, "io_block") if call and expected else None
            pending, named, collecting = None, [], False
        elif collecting and named_match:
            named.append((named_match.group("name"), named_match.group("value").strip()))
        elif (
            named_match
            and "=" in line
            and named_match.group("name") in ctx.params
            and len(ctx.params) == 1
            and _literal_source(named_match.group("value")) is not None
        ):
            # `arr = [1, 2]` ... `return [2, 1]` (a one-parameter function's worked example)
            start = index
            pending, named, collecting = named_match.group("value").strip(), [], False
        index += 1


def _call_from_arguments(ctx: _Context, text: str, *, trim: bool) -> str | None:
    """``f(...)`` from ``a = 1, b = [2]`` or ``1, [2]``; ``trim`` drops trailing prose."""
    text = text.strip().rstrip(",")
    attempts = [text]
    if trim:
        attempts += [text[:i] for i in range(len(text) - 1, 0, -1) if text[i] == ","]
    for attempt in attempts:
        try:
            call = ast.parse(f"_f({attempt})", mode="eval").body
        except SyntaxError:
            continue
        assert isinstance(call, ast.Call)
        values: list[str] = []
        if call.keywords and not call.args:
            names = [k.arg for k in call.keywords]
            if all(n in ctx.params for n in names) and len(set(names)) == len(ctx.params):
                by_name = {k.arg: k.value for k in call.keywords}
                nodes = [by_name[p] for p in ctx.params]
            elif not trim and len(names) == len(ctx.params):
                # An Input: block naming the values differently (`bucket_capacity : 1` for
                # `capacity`): they are all there, in order.
                nodes = [k.value for k in call.keywords]
            else:
                continue
        elif call.args and not call.keywords and len(call.args) == len(ctx.params):
            nodes = list(call.args)
        else:
            continue
        for node in nodes:
            source = _literal_node_source(node, f"_f({attempt})")
            if source is None:
                break
            values.append(source)
        else:
            return f"{ctx.entry_point}({', '.join(values)})"
    return None


# ---- f(x) <separator> y ----------------------------------------------------------------

_SEPARATOR = re.compile(
    r"^\s*(?:#\s*)?(?P<sep>==>|=>|==|->|➞|returns|should\s+return|=(?!=))\s*(?P<rest>.*)$",
    re.S,
)
_LINE_PREFIX = re.compile(r"^\s*(?:[*\-•]\s*)?(?:for\s+|assert\s+)?", re.I)


def _arrows(ctx: _Context, consumed: set[int]) -> Iterable[_Hit]:
    lines = ctx.lines
    for index, line in enumerate(lines):
        if index in consumed or ">>>" in line:
            continue
        position = _call_start(ctx, line)
        if position is None:
            continue
        joined = "\n".join(lines[index : index + 12])
        split = _split_call(joined, position, ctx)
        if split is None:
            continue
        call, end = split
        last = index + joined.count("\n", 0, end)
        rest_of_line = joined[end:].split("\n", 1)[0]
        separator = _SEPARATOR.match(rest_of_line)
        if separator is None:
            continue
        sep = separator.group("sep")
        if sep == "=":
            if ctx.last_heading is not None and index < ctx.last_heading:
                continue
            if _top_level_assignment(separator.group("rest")) is not None:
                continue  # `tri(2) = 1 + (2 / 2) = 2`: a derivation, not an example
        text, last = _take_balanced(lines, last, separator.group("rest"))
        consumed.update(range(index, last + 1))
        expected = _clean_expected(text)
        form = "assign" if sep == "=" else "arrow"
        yield index, _Found(call, expected, form) if expected is not None else None


def _call_start(ctx: _Context, line: str) -> int | None:
    match = re.search(rf"(?<![\w.]){re.escape(ctx.entry_point)}\s*\(", line)
    if match:
        return match.start()
    prefix = _LINE_PREFIX.match(line)
    position = prefix.end() if prefix else 0
    called = re.match(r"([A-Za-z_]\w*)\s*\(", line[position:])
    if called and ctx.alias is not None and called.group(1) == ctx.alias:
        return position
    return None


def _split_call(text: str, position: int, ctx: _Context) -> tuple[str, int] | None:
    """The normalised call starting at ``position`` and the index just after its ``)``."""
    name_match = re.match(r"([A-Za-z_]\w*)\s*\(", text[position:])
    if name_match is None:
        return None
    open_index = position + name_match.end() - 1
    close_index = _matching_paren(text, open_index)
    if close_index is None:
        return None
    inner = text[open_index + 1 : close_index]
    call = _normalise_call(ctx, inner)
    if call is None:
        return None
    return call, close_index + 1


def _normalise_call(ctx: _Context, inner: str) -> str | None:
    source = f"_f({inner})"
    try:
        call = ast.parse(source, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call):
        return None
    parts: list[str] = []
    for node in call.args:
        text = _literal_node_source(node, source)
        if text is None and isinstance(node, ast.Name) and _is_bare_word(ctx, node.id):
            text = repr(node.id)  # `is_happy(abcd)`: the word is the string argument
        if text is None:
            return None
        parts.append(text)
    for kw in call.keywords:
        text = _literal_node_source(kw.value, source)
        if kw.arg is None or kw.arg not in ctx.params or text is None:
            return None
        parts.append(f"{kw.arg}={text}")
    return f"{ctx.entry_point}({', '.join(parts)})"


def _is_bare_word(ctx: _Context, name: str) -> bool:
    return (
        name not in ctx.params
        and name not in ctx.defined
        and name not in ("true", "false", "none")
        and not hasattr(builtins, name)
        and not keyword.iskeyword(name)
    )


# ---- literal handling ------------------------------------------------------------------


def _literal_node_source(node: ast.expr, source: str) -> str | None:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    segment = ast.get_source_segment(source, node)
    return _one_line(segment) if segment is not None else None


def _one_line(literal: str) -> str:
    """A literal spread over docstring lines (a matrix, a long list) joined into one line."""
    if "\n" not in literal:
        return literal
    joined = ""
    for part in (p.strip() for p in literal.split("\n")):
        glue = "" if not joined or joined[-1] in "([{" or part[:1] in ")]}" else " "
        joined += glue + part
    try:
        same = ast.literal_eval(joined) == ast.literal_eval(literal)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        same = False
    return joined if same else literal  # a newline inside a triple-quoted string matters


def _literal_source(text: str) -> str | None:
    """``text`` as a normalised Python literal, or None if it is not one."""
    text = text.strip()
    lowered = {"true": "True", "false": "False", "none": "None"}.get(text)
    if lowered:
        return lowered
    if not text:
        return None
    try:
        tree = ast.parse(text, mode="eval")
        ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return _one_line(text)


def _clean_expected(text: str) -> str | None:
    text = _strip_comment(text).strip()
    assignment = _top_level_assignment(text)
    if assignment is not None:
        text = text[assignment + 1 :].strip()  # `19 - 5 - 6 = 8`: the worked answer's result
    # A sentence's full stop comes first: "should be 1." means 1, not the float 1.0.
    for candidate in (text[:-1] if text.endswith(".") else None, text):
        if candidate:
            literal = _literal_source(candidate)
            if literal is not None:
                return literal
    # `'No' (the name should start with a letter)`: a literal, then a remark in brackets.
    remark = re.match(r"^(?P<value>.+?)\s+\((?P<note>[^()]*)\)\.?$", text, re.S)
    if remark and " " in remark.group("note").strip():
        return _literal_source(remark.group("value"))
    return None


def _scan(text: str) -> Iterable[tuple[int, str, bool]]:
    """Characters of ``text`` with their index and whether they sit outside string literals."""
    quote: str | None = None
    escaped = False
    for index, char in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            yield index, char, False
        elif char in "'\"":
            quote = char
            yield index, char, False
        else:
            yield index, char, True


def _matching_paren(text: str, open_index: int) -> int | None:
    depth = 0
    for index, char, outside in _scan(text[open_index:]):
        if not outside:
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return open_index + index
    return None


def _depth(text: str) -> int:
    depth = 0
    for _, char, outside in _scan(text):
        if outside and char in "([{":
            depth += 1
        elif outside and char in ")]}":
            depth -= 1
    return depth


def _take_balanced(lines: list[str], index: int, text: str) -> tuple[str, int]:
    """``text`` plus following lines while its brackets are open (at most 10 more)."""
    parts = [text]
    while _depth("\n".join(parts)) > 0 and index + 1 < len(lines) and len(parts) < 11:
        index += 1
        parts.append(lines[index].strip())
    return "\n".join(parts), index


def _strip_comment(text: str) -> str:
    for index, char, outside in _scan(text):
        if outside and char == "#":
            return text[:index]
    return text


def _top_level_assignment(text: str) -> int | None:
    """Index of the last ``=`` outside strings and brackets that is not part of ``==`` etc."""
    found = None
    depth = 0
    for index, char, outside in _scan(text):
        if not outside:
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "=" and depth == 0:
            before = text[index - 1] if index else ""
            after = text[index + 1] if index + 1 < len(text) else ""
            if before not in "=!<>" and after not in "=>":
                found = index
    return found
