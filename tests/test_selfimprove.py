"""Self-improving judges: Self-Taught Evaluator and Meta-Rewarding loops.

Pair construction, filtering, length control and resumption are checked on hand-made
inputs; each command runs one iteration end to end on the tiny random Llama (real
tokenizer, real trainers). A random model never writes a readable verdict, so the
end-to-end runs append one to every sampled judgment (the ``readable_verdicts`` fixture):
everything else — generation, scoring, SFT, DPO, evaluation — is the real code path.
"""

from __future__ import annotations

import dataclasses
import json
import zlib

import pytest

from flame_reward.errors import InvalidInput
from flame_reward.results import Generation
from flame_reward.selfimprove.instructions import (
    Instruction,
    iteration_slice,
    load_instructions,
)
from flame_reward.selfimprove.meta_reward import (
    actor_pair,
    build_pairs,
    judge_pair,
    meta_candidates,
)
from flame_reward.selfimprove.sampling import clean_instruction
from flame_reward.selfimprove.self_taught import (
    extract_rationale,
    make_pairs,
    sample_judgments,
    select_judgments,
    training_items,
)
from flame_reward.selfimprove.templates import load_templates


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture()
def tiny_loader(tokenizer):
    """``loader(model, adapter)``: the same tiny random Llama every call, adapter merged."""
    from tests.conftest import make_tiny_loaded

    def load(model, adapter):
        loaded = make_tiny_loaded(tokenizer, seed=3, initializer_range=0.5)
        if adapter:
            from peft import PeftModel

            merged = PeftModel.from_pretrained(loaded.model, adapter).merge_and_unload().eval()
            loaded = dataclasses.replace(loaded, model=merged, adapter=adapter)
        return loaded

    return load


@pytest.fixture()
def readable_verdicts(monkeypatch):
    """Append a verdict to every generated judgment (alternating A/B for pairwise, a
    text-dependent rating for pointwise); the generated text itself is the model's."""
    from flame_reward import scoring

    original = scoring.Scorer.generate

    def generate(self, task, examples, **kwargs):
        out = []
        for g in original(self, task, examples, **kwargs):
            if not isinstance(g, Generation):
                out.append(g)
                continue
            if g.task == "pairwise":
                samples = tuple(f"Rationale: {t} reads well.\nVerdict: {'AB'[k % 2]}" for k, t in enumerate(g.samples))
            else:
                samples = tuple(f"Rationale: {t}\nVerdict: {1 + zlib.crc32(t.encode()) % 5}" for t in g.samples)
            out.append(Generation(g.task, samples[0], None, None, samples))
        return out

    monkeypatch.setattr(scoring.Scorer, "generate", generate)


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


# -- templates and instructions ----------------------------------------------------------------
def test_templates_ship_and_can_be_overridden(tmp_path):
    t = load_templates()
    assert set(t.origins.values()) == {"default"}
    filled = t.fill("similar_instruction", instruction="Name a {colour}.")
    assert "Name a {colour}." in filled and "{instruction}" not in filled
    (tmp_path / "answer.txt").write_text("Answer briefly: {instruction}")
    t2 = load_templates(tmp_path)
    assert t2.fill("answer", instruction="Hi") == "Answer briefly: Hi"
    assert t2.origins["answer"].endswith("answer.txt") and t2.digest() != t.digest()
    (tmp_path / "answer.txt").write_text("no placeholder here")
    with pytest.raises(InvalidInput, match="lacks the {instruction} placeholder"):
        load_templates(tmp_path)
    (tmp_path / "answer.txt").unlink()
    (tmp_path / "typo.txt").write_text("x")
    with pytest.raises(InvalidInput, match="typo.txt names no template"):
        load_templates(tmp_path)
    with pytest.raises(InvalidInput):
        load_templates(tmp_path / "missing")


def test_instruction_file_rows_and_errors(tmp_path):
    good = _write(tmp_path / "ok.jsonl", [{"prompt": "Write a haiku."}, {"instruction": "Sum 2 and 3.", "id": 7}])
    got = load_instructions(good)
    assert [(i.id, i.text) for i in got.items] == [("line-1", "Write a haiku."), ("7", "Sum 2 and 3.")]
    cases = [
        ([{"prompt": "fine"}, {"text": "no field"}], "prompt", "line 2"),
        ([{"prompt": "fine"}, "{not json"], "instructions", "line 2"),
        ([{"prompt": "   "}], "prompt", "is empty"),
        ([{"instruction": 3}], "instruction", "must be a string"),
    ]
    for rows, field, text in cases:
        with pytest.raises(InvalidInput) as err:
            load_instructions(_write(tmp_path / "bad.jsonl", rows))
        assert err.value.field == field and text in str(err.value)
    with pytest.raises(InvalidInput) as err:
        load_instructions(str(tmp_path / "nope.jsonl"))
    assert err.value.field == "--instructions"


def test_shared_sources_use_prompts_only_and_never_dev():
    from flame_reward.data import load_pairs

    hh = load_instructions("hh")
    assert hh.items and hh.notes["split"] == "train"
    assert all(not i.text.startswith("Human:") and "Assistant:" not in i.text for i in hh.items)
    dev_prompts = {r.prompt for name in ("hh-helpful", "hh-harmless") for r in load_pairs(name, split="dev").records}
    assert not {f"Human: {i.text}\n\nAssistant:" for i in hh.items} & dev_prompts
    mt = load_instructions("mt-bench")
    assert len(mt.items) == 80 and mt.items[0].id == "mt-bench:81"


def test_iteration_slices_are_fresh_then_wrap():
    pool = [Instruction(str(i), f"t{i}", "x") for i in range(10)]
    first, second = iteration_slice(pool, 4, 1, 0), iteration_slice(pool, 4, 2, 0)
    assert len(first) == len(second) == 4 and not {i.id for i in first} & {i.id for i in second}
    assert iteration_slice(pool, 4, 1, 0) == first  # seeded
    assert len(iteration_slice(pool, 4, 3, 0)) == 4  # wraps around
    assert len(iteration_slice(pool, None, 5, 0)) == 10


# -- Self-Taught: pairs, judgments, filtering --------------------------------------------------
def test_clean_instruction():
    assert clean_instruction('New instruction: "Name three rivers in Asia."') == "Name three rivers in Asia."
    assert clean_instruction("**Modified instruction:** Count to 5.\n\nAnswer: 1 2 3 4 5") == "Count to 5."
    assert clean_instruction("   ") == ""


def test_synthetic_loser_is_never_the_answer_to_the_original():
    templates = load_templates()
    calls = []

    def sampler(texts, num_samples=1, seed=0, desc=""):
        out = []
        for text in texts:
            calls.append(text)
            if "New instruction:" in text:  # the similar-instruction request
                original = text.split("Original instruction:\n", 1)[1].split("\n\nNew instruction:")[0]
                if original.startswith("copy"):
                    out.append([f"New instruction: {original}"])  # the model just repeats it
                elif original.startswith("blank"):
                    out.append([""])
                else:
                    out.append([f"New instruction: {original} but for cats"])
            elif text.startswith("same answer"):
                out.append(["identical"])
            else:
                out.append([f"ANSWER<{text}>"])
        return out

    insts = [Instruction(str(i), t, "test") for i, t in enumerate(
        ["Tell me about dogs", "copy this", "blank one", "same answer please", "Explain rain"])]
    rows = make_pairs(insts, sampler, templates)
    assert len(rows) == len(insts)  # every instruction has a row, made or skipped with its reason
    by_text = {r["instruction"]: r for r in rows}
    assert by_text["copy this"]["reason"] == "modified instruction is the original"
    assert by_text["blank one"]["reason"] == "empty modified instruction"
    assert by_text["same answer please"]["reason"] == "identical answers"
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["instruction"] for r in ok] == ["Tell me about dogs", "Explain rain"]
    for r in ok:
        assert r["good"] == f"ANSWER<{r['instruction']}>"
        assert r["bad"] == f"ANSWER<{r['modified_instruction']}>" != r["good"]
        assert r["modified_instruction"] == f"{r['instruction']} but for cats"
        assert r["bad_from"] == "modified_instruction"
    # The original instruction was answered once (the good answer) and never for a loser.
    assert calls.count("Tell me about dogs") == 1


def test_extract_rationale():
    assert extract_rationale("Rationale: B is off topic.\nVerdict: A") == "B is off topic."
    assert extract_rationale("**Rationale:** short.\n**Verdict:** B") == "short."
    assert extract_rationale("Response A is better.") == "Response A is better."


class FakeJudge:
    """``generate`` returns fixed samples per presentation."""

    def __init__(self, samples):
        self.samples = samples
        self.calls = []

    def generate(self, task, examples, **kwargs):
        self.calls.append((task, list(examples), kwargs))
        return [Generation(task, self.samples[0], None, None, tuple(self.samples)) for _ in examples]


def test_sampled_judgments_know_the_right_verdict_in_both_orders():
    pair = {"id": "p1", "instruction": "Q?", "good": "right answer", "bad": "answer to another question"}
    judge = FakeJudge(["Rationale: first is on topic.\nVerdict: A", "Verdict: B", "no idea"])
    records = sample_judgments(judge, [pair], samples=3, temperature=0.8, top_p=0.95, max_new_tokens=32, seed=0)
    task, examples, kwargs = judge.calls[0]
    assert task == "pairwise" and kwargs["rationale"] is True and kwargs["num_samples"] == 3
    assert examples[0]["response_a"] == "right answer" and examples[1]["response_b"] == "right answer"
    assert len(records) == 6
    first = [r for r in records if r["order"] == "good-first"]
    second = [r for r in records if r["order"] == "good-second"]
    assert [r["correct"] for r in first] == [True, False, False]
    assert [r["correct"] for r in second] == [False, True, False]
    assert first[2]["verdict"] is None and "no verdict" in first[2]["error"]


def _record(pair, order, verdict, sample, rationale="because"):
    expected = "A" if order == "good-first" else "B"
    return {"pair_id": pair, "order": order, "expected": expected, "sample": sample, "verdict": verdict,
            "correct": verdict == expected, "rationale": rationale if verdict else None, "instruction": "Q",
            "response_a": "x", "response_b": "y"}


def test_filtering_keeps_only_correct_verdicts():
    records = []
    for p in range(6):
        for k, v in enumerate(["A", "A", "B", None]):
            records.append(_record(p, "good-first", v, k))
        for k, v in enumerate(["A", "B", "B"] if p < 2 else ["A", "A", "A"]):
            records.append(_record(p, "good-second", v, k))
    records.append(_record(9, "good-first", "A", 0, rationale="  "))
    out = select_judgments(records, keep_per_order=1, balance=False, seed=1)
    kept = [r for r in out if r["kept"]]
    assert kept and all(r["verdict"] == r["expected"] for r in kept)
    assert all(r["correct"] for r in kept)
    assert len({(r["pair_id"], r["order"]) for r in kept}) == len(kept) == 8  # one per pair and order
    reasons = {r["reason"] for r in out if not r["kept"]}
    assert reasons == {"wrong verdict", "no readable verdict", "extra correct judgment", "empty rationale"}
    # keep_per_order=0 keeps every correct one; balance evens out A and B.
    all_correct = select_judgments(records, keep_per_order=0, balance=False)
    assert sum(r["kept"] for r in all_correct) == sum(1 for r in records if r["correct"] and (r["rationale"] or "").strip())
    balanced = [r for r in select_judgments(records, keep_per_order=1, balance=True, seed=2) if r["kept"]]
    labels = [r["verdict"] for r in balanced]
    assert labels.count("A") == labels.count("B") == 2 and all(r["correct"] for r in balanced)
    # A judge that only ever says A gets nothing to train on under balance (it would learn its bias).
    only_a = [_record(p, "good-first", "A", 0) for p in range(3)]
    assert not any(r["kept"] for r in select_judgments(only_a, balance=True))


def test_training_items_target_the_rationale_then_verdict(tokenizer):
    from flame_reward.train.targets import IGNORE, tokenize_example

    rec = {**_record("p", "good-second", "B", 0, rationale="A answers another question."), "kept": True,
           "response_a": "off-topic", "response_b": "on-topic"}
    (item,) = training_items([rec, {**rec, "kept": False}])
    assert item.label == "B" and item.rationale == "A answers another question."
    tok = tokenize_example(tokenizer, item, 512)
    target = tokenizer.decode([t for t, lab in zip(tok.input_ids, tok.labels) if lab != IGNORE])
    assert target == "Rationale: A answers another question.\nVerdict: B" + tokenizer.eos_token
    assert "First write 'Rationale:'" in tokenizer.decode(tok.input_ids)


# -- Meta-Rewarding: length-controlled pairs -------------------------------------------------
def test_actor_pair_length_control_on_hand_made_scores():
    responses = ["a long and thorough answer " * 4, "short good", "a bad answer", "a bad and very long rambling answer"]
    c = actor_pair(responses, [5.0, 4.8, 1.0, 1.2], tier=0.25, max_length_ratio=None)
    assert (c.chosen, c.rejected, c.reason) == (1, 3, "ok")  # shortest of the top tier, longest of the bottom
    c = actor_pair(responses, [5.0, 4.8, 1.0, 1.2], tier=0.0, max_length_ratio=None)
    assert (c.chosen, c.rejected) == (0, 2)  # no tier: the single best and worst
    # The chosen response may not be much longer than the rejected one.
    c = actor_pair(["x" * 100, "y" * 10], [5.0, 1.0], max_length_ratio=2.0)
    assert not c.ok and c.reason == "chosen much longer than rejected"
    assert actor_pair(["x" * 100, "y" * 60], [5.0, 1.0], max_length_ratio=2.0).ok
    assert actor_pair(["a", "b", "c"], [3.0, 3.0, None]).reason == "all responses scored the same"
    assert actor_pair(["a", "b"], [3.0, None]).reason == "fewer than two scored responses"
    # Unscored responses never enter a pair; chosen always outscores rejected.
    c = actor_pair(["a", "bb", "ccc", "dddd"], [None, 2.0, 4.0, None], tier=0.25)
    assert (c.chosen, c.rejected) == (2, 1)


def test_judge_pair_from_meta_verdicts():
    assert judge_pair(0.8, "first judgment", "second judgment") == ("first judgment", "second judgment")
    assert judge_pair(0.3, "first", "second") == ("second", "first")
    assert judge_pair(0.55, "first", "second", margin=0.1) == "meta-judge undecided"
    assert judge_pair(0.9, "f" * 50, "s" * 10, max_length_ratio=2.0) == "chosen much longer than rejected"


def test_build_pairs_counts_every_prompt():
    def scored(pid, index, response, score, ratings):
        return {"prompt_id": pid, "prompt": f"prompt {pid}", "index": index, "response": response, "score": score,
                "judgments": [{"text": f"judgment rating {r}", "rating": r} for r in ratings]}

    recs = [scored("p", 0, "good", 4.5, [4, 5]), scored("p", 1, "bad", 1.5, [1, 2]),
            scored("q", 0, "same", 3.0, [3, 3]), scored("q", 1, "same too", 3.0, [3])]
    assert meta_candidates(recs) == [(0, 1, 0), (1, 1, 0)]
    metas = [{"prompt_id": "p", "response": 0, "first": 1, "second": 0, "p_first_better": 0.7, "judge_task": "T"},
             {"prompt_id": "p", "response": 1, "first": 1, "second": 0, "p_first_better": 0.5, "judge_task": "T"}]
    pairs, counts = build_pairs([], recs, metas, prompt_text=lambda t: f"<u>{t}</u>", judge_prompt_text=lambda t: f"<j>{t}</j>",
                                tier=0.25, max_length_ratio=None, margin=0.0)
    assert counts["actor_pairs"] == 1 and counts["actor_reasons"] == {"ok": 1, "all responses scored the same": 1}
    assert counts["judge_pairs"] == 1 and counts["judge_reasons"] == {"ok": 1, "meta-judge undecided": 1}
    actor = next(p for p in pairs if p["kind"] == "actor")
    assert (actor["prompt"], actor["chosen"], actor["rejected"]) == ("<u>prompt p</u>", "good", "bad")
    judge = next(p for p in pairs if p["kind"] == "judge")
    assert (judge["prompt"], judge["chosen"], judge["rejected"]) == ("<j>T</j>", "judgment rating 5", "judgment rating 4")


# -- the loops end to end on the tiny model ------------------------------------------------------
def _tiny_self_taught(tmp_path, **over):
    from flame_reward.selfimprove.self_taught import SelfTaughtConfig

    values = {"out": str(tmp_path / "st"), "instructions": "mt-bench", "n_instructions": 3, "samples": 2,
              "max_new_tokens": 8, "dev_limit": 2, "epochs": 1.0, "train_batch_size": 2, "progress": False,
              "judge_adapter": None}  # the tiny model cannot take the embedded default's adapter
    values.update(over)
    return SelfTaughtConfig(**values)


def test_self_taught_resumes_after_an_interruption(tmp_path, tiny_loader, readable_verdicts, monkeypatch):
    from flame_reward.selfimprove import self_taught
    from flame_reward.train import sft

    cfg = _tiny_self_taught(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(sft, "train", interrupted)
        with pytest.raises(KeyboardInterrupt):
            self_taught.run_self_taught(cfg, loader=tiny_loader)
    it = tmp_path / "st" / "iter-1"
    assert (it / "pairs.DONE").is_file() and (it / "judge.DONE").is_file()
    assert not (it / "train.DONE").exists() and not (it / "eval.DONE").exists()
    before = {p.name: p.read_text() for p in it.iterdir() if p.suffix in (".DONE", ".jsonl")}

    def redone(*args, **kwargs):
        raise AssertionError("a finished step was run again")

    monkeypatch.setattr(self_taught, "make_pairs", redone)
    monkeypatch.setattr(self_taught, "sample_judgments", redone)
    monkeypatch.setattr(self_taught, "dev_figures", redone)  # iter-0 eval is done too
    # A different experiment in the same directory is refused rather than mixed in.
    with pytest.raises(InvalidInput) as err:
        self_taught.run_self_taught(_tiny_self_taught(tmp_path, samples=3), loader=tiny_loader)
    assert err.value.field == "--out" and "samples" in str(err.value)
    from flame_reward.selfimprove.evaluation import dev_figures

    calls = []

    def dev_after_training(*args, **kwargs):
        calls.append(1)
        return dev_figures(*args, **kwargs)

    monkeypatch.setattr(self_taught, "dev_figures", dev_after_training)
    result = self_taught.run_self_taught(cfg, loader=tiny_loader)
    assert {p.name: p.read_text() for p in it.iterdir() if p.name in before} == before
    assert (it / "train.DONE").is_file() and (it / "adapter" / "adapter_config.json").is_file()
    assert len(calls) == 1  # only the new judge was evaluated
    assert [r["iteration"] for r in result["rows"]] == [0, 1]


def test_self_taught_command_one_iteration_end_to_end(tmp_path, tiny_loader, readable_verdicts, monkeypatch, capsys):
    from flame_reward.cli import main
    from flame_reward.selfimprove import models

    monkeypatch.setattr(models, "default_loader", lambda device=None: tiny_loader)
    instructions = _write(tmp_path / "inst.jsonl", [{"prompt": "Name a colour."}, {"prompt": "Write a limerick."},
                                                    {"instruction": "Explain tides."}])
    out = tmp_path / "run"
    code = main(["self-taught", "--out", str(out), "--instructions", instructions, "--iterations", "1", "--judge-adapter", "none",
                 "--samples", "2", "--max-new-tokens", "8", "--dev-limit", "2", "--epochs", "1",
                 "--train-batch-size", "2", "--no-balance", "--keep-per-order", "0", "-q"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| 0 (start) |" in table and "| 1 |" in table
    it = out / "iter-1"
    for name in ("pairs.jsonl", "judgments.jsonl", "adapter/adapter_config.json", "report.json",
                 "pairs.DONE", "judge.DONE", "train.DONE", "eval.DONE"):
        assert (it / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    row = report["iterations"][1]
    assert row["pairs"]["instructions"] == 3
    kept = [json.loads(x) for x in (it / "judgments.jsonl").read_text().splitlines()]
    assert row["judgments"]["kept"] == sum(r["kept"] for r in kept) == row["train"]["examples"] > 0
    assert all(r["correct"] for r in kept if r["kept"])
    assert set(row["dev"]["sets"]) == {"hh-helpful", "hh-harmless"}
    # compare_iterations' documented rule on pooled dev accuracy: any drop is "worse", any rise
    # "better", else "same" (a difference under 1e-9 is float noise); the change is exact.
    before, after = report["iterations"][0]["dev"]["all"]["accuracy"], row["dev"]["all"]["accuracy"]
    change = after - before
    assert row["change"]["accuracy_change"] == pytest.approx(change, abs=1e-12)
    assert row["change"]["verdict"] == ("worse" if change < -1e-9 else "better" if change > 1e-9 else "same")
    assert "vs previous" in (out / "report.md").read_text()


def test_meta_reward_command_end_to_end(tmp_path, tiny_loader, readable_verdicts, monkeypatch, capsys):
    from flame_reward.cli import main
    from flame_reward.selfimprove import models

    monkeypatch.setattr(models, "default_loader", lambda device=None: tiny_loader)
    out = tmp_path / "mr"
    prompts = _write(tmp_path / "prompts.jsonl", [{"prompt": "Name a colour."}, {"prompt": "Say hello."}])
    args = ["meta-reward", "--out", str(out), "--prompts", prompts, "--adapter", "none", "--n-prompts", "2", "--responses", "3",
            "--judge-samples", "2", "--max-new-tokens", "8", "--dev-limit", "1", "--meta-eval-pairs", "1",
            "--max-steps", "2", "--max-length-ratio", "0", "-q"]
    assert main([*args, "--iterations", "1"]) == 0
    assert "meta-judge agreement" in capsys.readouterr().out
    it = out / "iter-1"
    for name in ("responses.jsonl", "judgments.jsonl", "meta.jsonl", "pairs.jsonl", "adapter/adapter_config.json",
                 "report.json", "meta_agreement.jsonl", "actor.DONE", "judge.DONE", "meta.DONE", "pairs.DONE",
                 "train.DONE", "eval.DONE"):
        assert (it / name).exists(), name
    assert not (it / "adapter" / "ref").exists()  # only the trained policy adapter is saved
    row = json.loads((out / "report.json").read_text())["iterations"][1]
    assert row["actor"]["responses"] == 6
    assert row["pairs"]["actor_pairs"] + row["pairs"]["judge_pairs"] > 0
    assert row["train"]["trained"] and row["train"]["steps"] == 2
    pairs = [json.loads(x) for x in (it / "pairs.jsonl").read_text().splitlines()]
    for p in pairs:
        assert p["prompt"].startswith("<|im_start|>") and p["chosen"] != p["rejected"]
        if p["kind"] == "actor":
            assert p["chosen_score"] > p["rejected_score"]
    agreement = row["meta_agreement"]
    assert agreement["presentations"] == 2 and agreement["compared"] <= agreement["with_right_and_wrong"]
    details = [json.loads(x) for x in (it / "meta_agreement.jsonl").read_text().splitlines()]
    assert len(details) == 2 and all(len(d["verdicts"]) == 2 for d in details)
    # A second iteration continues the run: DPO from the first adapter (TRL's frozen copy of
    # it is the reference), iteration 1 untouched.
    done = (it / "train.DONE").read_text()
    assert main([*args, "--iterations", "2"]) == 0
    assert (it / "train.DONE").read_text() == done
    rows = json.loads((out / "report.json").read_text())["iterations"]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    second = json.loads((out / "iter-2" / "dpo_report.json").read_text())
    assert second["config"]["init_adapter"] == str(it / "adapter") and second["steps"] == 2
    assert not (out / "iter-2" / "adapter" / "ref").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    from flame_reward.cli import main

    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"question": "no prompt field"}])
    assert main(["self-taught", "--out", str(tmp_path / "o"), "--instructions", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 2" in err[0] and err[0].startswith("flame-reward: error: prompt:")
    assert main(["meta-reward", "--out", str(tmp_path / "o2"), "--responses", "1"]) == 2
    assert "--responses" in capsys.readouterr().err


# -- the embedded default (slow) ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.model
def test_both_commands_run_on_the_embedded_default(tmp_path):
    from flame_reward.cli import main

    common = ["--iterations", "1", "--max-new-tokens", "16", "--dev-limit", "2", "--threads", "1", "-q"]
    assert main(["self-taught", "--out", str(tmp_path / "st"), "--instructions", "mt-bench", "--n-instructions", "2",
                 "--samples", "2", "--max-steps", "2", *common]) == 0
    assert (tmp_path / "st" / "iter-1" / "eval.DONE").is_file()
    assert main(["meta-reward", "--out", str(tmp_path / "mr"), "--prompts", "mt-bench", "--n-prompts", "2",
                 "--responses", "2", "--judge-samples", "2", "--meta-eval-pairs", "1", "--max-steps", "2", *common]) == 0
    assert (tmp_path / "mr" / "iter-1" / "eval.DONE").is_file()
