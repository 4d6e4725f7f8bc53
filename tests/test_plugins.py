"""The plugin system: one manager loaded explicitly, built-ins registered like plugins, every
hook typed and called, one registry mechanism, and a plugin's command and data set in use."""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flame_reward import hookspecs
from flame_reward.cli import build_parser, main
from flame_reward.data import NamedSet, PairFields, PairFormat, load_pairs, named_sets, read_pairs
from flame_reward.errors import DataError, InvalidInput, UnknownTaskType
from flame_reward.eval.pairs import load_source
from flame_reward.hookspecs import hookimpl
from flame_reward.plugins import DEFAULT_PLUGINS, get_plugin_manager, load_plugins
from flame_reward.registry import Registry
from flame_reward.tasks import get_task_type, list_task_types
from flame_reward.tasks.pairwise import PairwiseTask
from flame_reward.train.recipes import set_examples

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_"))


def run_python(code: str, **env: str) -> str:
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_importing_the_plugin_module_loads_no_plugin():
    loaded = json.loads(run_python(
        "import json, sys\nimport flame_reward.plugins as p\n"
        "before = sorted(m for m in sys.modules if m in p.DEFAULT_PLUGINS or m == 'flame_reward_faithfulness')\n"
        "p.get_plugin_manager()\n"
        "after = sorted(m for m in sys.modules if m in p.DEFAULT_PLUGINS or m == 'flame_reward_faithfulness')\n"
        "print(json.dumps([before, after]))"))
    assert loaded[0] == []
    assert loaded[1] == sorted([*DEFAULT_PLUGINS, "flame_reward_faithfulness"])


def test_no_plugins_env_loads_only_the_builtins():
    out = run_python("from flame_reward.tasks import list_task_types\nprint(' '.join(list_task_types()))",
                     FLAME_REWARD_NO_PLUGINS="1")
    assert "pairwise" in out.split() and "summary_faithfulness" not in out.split()


def test_listing_task_types_loads_no_torch_and_no_training_code():
    out = run_python("import sys\nfrom flame_reward.tasks import list_task_types\nlist_task_types()\n"
                     "print(' '.join(sorted(sys.modules)))").split()
    assert not {"torch", "transformers", "trl", "peft", "grpc"} & {m.split(".")[0] for m in out}
    # The train and self-improving packages contribute only their command parsers.
    trained = [m for m in out if m.startswith(("flame_reward.train.", "flame_reward.selfimprove."))]
    assert sorted(trained) == ["flame_reward.selfimprove.command", "flame_reward.train.command",
                               "flame_reward.train.heads_command"]


def test_builtins_are_registered_plugins():
    pm = get_plugin_manager()
    for name in DEFAULT_PLUGINS:
        module = pm.get_plugin(name)
        assert module is not None and module.__name__ == name
        assert pm.get_hookcallers(module), f"{name} implements no hook"
    implemented = {caller.name for name in DEFAULT_PLUGINS for caller in pm.get_hookcallers(pm.get_plugin(name))}
    assert implemented == set(HOOKS)  # every hook has a built-in implementation


def test_every_hook_is_typed_and_documented():
    assert HOOKS == ["register_commands", "register_datasets", "register_pair_formats", "register_task_types"]
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    specs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    for name in HOOKS:
        node = specs[name]
        assert ast.get_docstring(node), name
        for arg in node.args.args:
            assert arg.annotation is not None, f"{name}({arg.arg}) has no type"
            assert "Any" not in ast.unparse(arg.annotation), f"{name}({arg.arg}): {ast.unparse(arg.annotation)}"


def test_every_hook_is_called_by_the_package():
    called = set()
    for path in (ROOT / "flame_reward").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # pm.hook.<name>(...) directly, or Registry("<name>", ...) which calls it
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "hook":
                called.add(node.func.attr)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Registry" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                called.add(node.args[0].value)
    assert called >= set(HOOKS), set(HOOKS) - called


# --- one registry mechanism ------------------------------------------------------------


class LateTaskPlugin:
    @staticmethod
    @hookimpl
    def register_task_types(register):
        task = PairwiseTask()
        task.name = "late_pairwise"
        register(task)


def test_a_registry_refills_when_a_plugin_comes_and_goes():
    pm = get_plugin_manager()
    assert "late_pairwise" not in list_task_types()
    pm.register(LateTaskPlugin, name="test-late")
    try:
        assert get_task_type("late_pairwise").name == "late_pairwise"
    finally:
        pm.unregister(name="test-late")
    with pytest.raises(UnknownTaskType):
        get_task_type("late_pairwise")


def test_registry_rules():
    class Item:
        def __init__(self, name, value=0):
            self.name, self.value = name, value

        def __eq__(self, other):
            return (self.name, self.value) == (other.name, other.value)

    class Items:
        items = [Item("a"), Item("b"), Item("a")]  # the same "a" twice is one item

        @staticmethod
        @hookimpl
        def register_datasets(register):
            for item in Items.items:
                register(item)

    registry = Registry("register_datasets", "thing", lambda name, known: LookupError(f"{name} not in {known}"))
    pm = get_plugin_manager()
    pm.register(Items, name="test-items")
    try:
        assert ["a", "b"] <= list(registry) and registry["b"].value == 0
        with pytest.raises(LookupError, match="zz not in"):
            registry.lookup("zz")
        Items.items = [Item("c"), Item("c", 1)]
        registry.reset()
        with pytest.raises(InvalidInput) as err:
            len(registry)
        assert err.value.field == "name" and "thing 'c' is registered twice" in str(err.value)
        Items.items = [Item("")]
        registry.reset()
        with pytest.raises(InvalidInput, match="has no name"):
            list(registry)
    finally:
        pm.unregister(name="test-items")
    assert "a" not in registry


def test_a_fresh_plugin_manager_refills_the_registries():
    old = get_plugin_manager()
    builtin = [name for name, s in named_sets("pairwise").items() if s.load.__module__ == "flame_reward.data.sets"]
    try:
        fresh = load_plugins(entry_points=False)
        assert fresh is get_plugin_manager() and fresh is not old
        assert "summary_faithfulness" not in list_task_types()
        assert list(named_sets("pairwise")) == builtin
    finally:
        load_plugins()
    assert "summary_faithfulness" in list_task_types()


# --- a plugin's data set and command ---------------------------------------------------


def _pairs_file(path: Path) -> Path:
    rows = [{"ask": f"question {i}", "good": f"good {i}", "bad": f"bad {i}"} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return path


class DataPlugin:
    path: Path

    @staticmethod
    @hookimpl
    def register_pair_formats(register):
        register(PairFormat("ask-good-bad", "ask, good, bad", lambda row: "ask" in row,
                            lambda row: PairFields(row["ask"], row["good"], row["bad"], "A")))

    @staticmethod
    @hookimpl
    def register_datasets(register):
        register(NamedSet("test-asks", "20 hand-made pairs", lambda root: read_pairs(DataPlugin.path, "ask-good-bad",
                                                                                    "test-asks"), kind="pairwise"))


@pytest.fixture()
def data_plugin(tmp_path):
    DataPlugin.path = _pairs_file(tmp_path / "asks.jsonl")
    pm = get_plugin_manager()
    pm.register(DataPlugin, name="test-data")
    yield DataPlugin
    pm.unregister(name="test-data")


def test_a_plugin_data_set_is_used_by_loaders_eval_and_train(data_plugin):
    assert named_sets("pairwise")["test-asks"].description == "20 hand-made pairs"
    every = load_pairs("test-asks")
    assert len(every.records) == 20 and len(every.bad) == 1 and every.bad[0].row == 21
    dev, train = load_pairs("test-asks", split="dev"), load_pairs("test-asks", split="train")
    assert len(dev.records) + len(train.records) == 20 and not {r.key for r in dev.records} & {r.key for r in train.records}
    source = load_source("test-asks", split="dev")
    assert source.kind == "set" and source.records == dev.records and source.rows == len(dev.records) + 1
    examples = set_examples("test-asks", "pairwise", split="train")
    assert len(examples) == 2 * len(train.records)  # both presentation orders
    with pytest.raises(DataError, match="unknown pointwise set 'test-asks'"):
        set_examples("test-asks", "pointwise")


def test_named_set_kind_is_checked():
    with pytest.raises(InvalidInput) as err:
        NamedSet("x", "y", lambda root: None, kind="ranking")
    assert err.value.field == "kind"


class CommandPlugin:
    @staticmethod
    @hookimpl
    def register_commands(subparsers):
        p = subparsers.add_parser("count-sets", help="Count the named sets of one kind.")
        p.add_argument("kind")
        p.set_defaults(fn=lambda args: print(len(named_sets(args.kind))) or 0)


def test_a_plugin_command_is_on_the_parser_and_runs(capsys):
    pm = get_plugin_manager()
    builtin = _commands(build_parser())
    assert builtin[:4] == ["compare", "score", "tasks", "demo"]
    pm.register(CommandPlugin, name="test-command")
    try:
        assert set(_commands(build_parser())) == {*builtin, "count-sets"}
        assert main(["count-sets", "classification"]) == 0
        assert capsys.readouterr().out.strip() == str(len(named_sets("classification")))
        assert main(["count-sets", "ranking"]) == 2  # a FlameRewardError is a one-line error
        assert "kind: must be one of" in capsys.readouterr().err
    finally:
        pm.unregister(name="test-command")
    assert "count-sets" not in _commands(build_parser())


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)
