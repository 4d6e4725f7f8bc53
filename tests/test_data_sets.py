"""The named shared sets, read from the real data in the shared folder.

Expected row counts come from the table in ``shared/data/README.md``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flame_reward.data import (
    ClassReadResult,
    PairReadResult,
    ScoreReadResult,
    load_classes,
    load_pairs,
    load_scores,
    named_sets,
    shared_data_dir,
)
from flame_reward.errors import DataError, InvalidInput

try:
    DATA: Path | None = shared_data_dir()
except DataError:
    DATA = None

pytestmark = pytest.mark.skipif(DATA is None, reason="shared data folder not found (set FLAME_REWARD_DATA)")

_cache: dict[str, Any] = {}


def pairs(name: str) -> PairReadResult:
    if name not in _cache:
        _cache[name] = load_pairs(name)
    result: PairReadResult = _cache[name]
    return result


def scores(name: str) -> ScoreReadResult:
    if name not in _cache:
        _cache[name] = load_scores(name)
    result: ScoreReadResult = _cache[name]
    return result


def classes(name: str) -> ClassReadResult:
    if name not in _cache:
        _cache[name] = load_classes(name)
    result: ClassReadResult = _cache[name]
    return result


README_PAIR_ROWS = {
    "hh-helpful": 1177,
    "hh-harmless": 1156,
    "hh-helpful-online": 1137,
    "hh-helpful-rejection": 2749,
    "pandalm": 999,
    "auto-j": 1392,
    "llmbar": 315,
}


def test_every_pair_set_is_counted() -> None:
    builtin = {name for name, s in named_sets("pairwise").items() if s.load.__module__ == "flame_reward.data.sets"}
    assert set(README_PAIR_ROWS) == builtin


@pytest.mark.parametrize(("name", "rows"), sorted(README_PAIR_ROWS.items()))
def test_pair_set_row_counts(name: str, rows: int) -> None:
    result = pairs(name)
    assert result.total_rows == rows
    assert result.total_rows == len(result.records) + len(result.bad)
    # A handful of broken upstream rows is expected; many would mean a broken adapter.
    assert len(result.bad) <= 0.02 * rows, result.bad[:5]
    assert {r.dataset for r in result.records} == {name}
    assert all(r.label in ("A", "B", "tie") for r in result.records)


@pytest.mark.parametrize("name", ["hh-helpful", "hh-harmless", "hh-helpful-online", "hh-helpful-rejection"])
def test_hh_prompts_end_at_an_assistant_turn(name: str) -> None:
    for rec in pairs(name).records:
        assert rec.prompt.startswith("Human:"), (rec.row, rec.prompt[:80])
        assert rec.prompt.endswith("\n\nAssistant:"), rec.row
        assert "\n\nHuman:" not in rec.response_a and "\n\nHuman:" not in rec.response_b, rec.row
        assert rec.response_a != rec.response_b


def test_hh_helpful_known_bad_row() -> None:
    # Line 1085 of helpful-base/test-even has the same transcript as chosen and rejected.
    bad = pairs("hh-helpful").bad
    assert [(b.row, b.error) for b in bad] == [(1085, "rejected: the final Assistant turn is identical to chosen's")]


def test_hh_multi_turn_record() -> None:
    # Line 2 of helpful-base/test-even: two Human turns, the replies differ in the last one.
    rec = next(r for r in pairs("hh-helpful").records if r.row == 2)
    assert rec.prompt.count("Human:") == 2 and rec.prompt.count("Assistant:") == 2
    assert rec.prompt.endswith("Oh, I would love to learn about wolves.\n\nAssistant:")
    assert rec.response_a.startswith("Sure! Here’s some fun facts")
    assert rec.response_b.startswith("I’ll share an article")
    assert rec.subset == "helpful-base"


def test_auto_j_labels_match_the_file() -> None:
    # The raw file has 520 label-0, 499 label-1 and 373 label-2 rows.
    result = pairs("auto-j")
    assert Counter(r.label for r in result.records) == {"A": 520, "B": 499, "tie": 373}
    assert len({r.subset for r in result.records}) == 58


def test_pandalm_majority_on_real_rows() -> None:
    by_row = {r.row: r for r in pairs("pandalm").records}
    assert by_row[1].label == "B"  # annotators 2, 2, 2
    assert by_row[158].response_a == "True"  # stored as JSON true upstream
    assert "tie" in {r.label for r in by_row.values()}


def test_llmbar_subsets_are_folders() -> None:
    counts = Counter(r.subset for r in pairs("llmbar").records)
    assert counts == {"Base_9": 54, "Base_10": 54, "Constraint": 89, "Negation": 59, "Normal": 59}


@pytest.mark.parametrize(
    ("name", "rows", "per_row"), [("summeval", 1200, 4), ("dialsummeval", 1400, 4), ("openmeva", 200, 5)]
)
def test_score_set_counts(name: str, rows: int, per_row: int) -> None:
    result = scores(name)
    assert result.total_rows == rows
    assert len(result.records) + len(result.bad) == rows * per_row
    assert all(1 <= r.score <= 5 and r.scale == (1, 5) for r in result.records)


def test_summeval_expert_mean() -> None:
    result = scores("summeval")
    assert {r.subset for r in result.records} == {"coherence", "consistency", "fluency", "relevance"}
    # M8 line 1: expert coherence 3, 1, 1; relevance 2, 3, 2.
    first = {r.subset: r for r in result.records if r.source.endswith("M8_outputs_annotations.jsonl") and r.row == 1}
    assert first["coherence"].score == pytest.approx(5 / 3)
    assert first["relevance"].score == pytest.approx(7 / 3)
    assert first["coherence"].extra["source_text"].startswith("Paul Merson has restarted his row with Andros Townsend")
    assert first["coherence"].prompt == "Summarize the article."


def test_dialsummeval_dialogue_is_one_turn_per_line() -> None:
    rec = scores("dialsummeval").records[0]
    assert rec.extra["source_text"].splitlines()[0] == "Elena: Happy birthday my dear!"
    assert rec.subset == "coherence" and rec.score == pytest.approx((4 + 5 + 5) / 3)


def test_openmeva_human_score_and_reference() -> None:
    rec = scores("openmeva").records[0]
    assert rec.prompt == "[FEMALE] loved watching reality shows ."
    assert rec.extra["model_id"] == "fusion" and rec.score == pytest.approx(2.2)
    assert rec.extra["reference"].startswith("[FEMALE] 's favorite reality show")


def test_qags_majority_votes() -> None:
    result = classes("qags")
    assert result.total_rows == 235 + 239
    assert Counter(r.subset for r in result.records) == {"cnndm": 714, "xsum": 239}
    assert result.bad == []
    first = result.records[0]
    assert (first.subset, first.row, first.extra["votes"], first.label) == ("cnndm", 1, "yes,no,yes", "yes")
    assert first.labels == ("yes", "no")
    assert len(first.extra["source_text"]) > len(first.response)


@pytest.mark.parametrize("name", ["hh-helpful", "pandalm"])
def test_named_splits_partition_the_set(name: str) -> None:
    full = pairs(name)
    train, dev = load_pairs(name, "train"), load_pairs(name, "dev")
    assert len(train.records) + len(dev.records) == len(full.records)
    assert not {r.key for r in train.records} & {r.key for r in dev.records}
    assert 0.15 <= len(dev.records) / len(full.records) <= 0.25
    assert dev.bad == full.bad


def test_group_split_separates_prompts() -> None:
    train = load_pairs("pandalm", "train", split_by="group")
    dev = load_pairs("pandalm", "dev", split_by="group")
    assert dev.records and not {r.prompt for r in train.records} & {r.prompt for r in dev.records}


def test_score_and_class_splits() -> None:
    dev = load_scores("summeval", "dev")
    # All four dimensions of one summary share a key, so they stay together.
    assert len(dev.records) % 4 == 0
    assert 0 < len(load_classes("qags", "dev").records) < len(classes("qags").records)


def test_unknown_names_and_splits() -> None:
    with pytest.raises(DataError, match="hh-helpful.*pandalm"):
        load_pairs("hh-helpfull")
    with pytest.raises(DataError, match="summeval"):
        load_scores("nope")
    with pytest.raises(DataError, match="qags"):
        load_classes("nope")
    with pytest.raises(InvalidInput, match="split"):
        load_pairs("pandalm", "test")


def test_sets_have_descriptions() -> None:
    for kind in ("pairwise", "pointwise", "classification"):
        for name, named in named_sets(kind).items():
            assert named.name == name and named.kind == kind and named.description


def test_hh_sets_carry_their_own_criteria() -> None:
    # Helpful and harmless reward opposite behaviour on similar prompts; each set says which.
    from flame_reward.data.sets import GENERAL_CRITERIA, HH_HARMLESS_CRITERIA, HH_HELPFUL_CRITERIA
    from flame_reward.eval.pairs import pair_example

    # PandaLM, Auto-J and LLMBar ask one question of a pair (instruction following).
    expected = {"hh-helpful": HH_HELPFUL_CRITERIA, "hh-harmless": HH_HARMLESS_CRITERIA,
                "hh-helpful-online": HH_HELPFUL_CRITERIA, "hh-helpful-rejection": HH_HELPFUL_CRITERIA,
                "pandalm": GENERAL_CRITERIA, "auto-j": GENERAL_CRITERIA, "llmbar": GENERAL_CRITERIA}
    for name, criteria in expected.items():
        records = load_pairs(name, split="dev").records
        assert {r.criteria for r in records} == {criteria}, name
    record = load_pairs("hh-harmless", split="dev").records[0]
    assert record.swapped().criteria == HH_HARMLESS_CRITERIA
    assert pair_example(record)["criteria"] == HH_HARMLESS_CRITERIA
    assert pair_example(record, criteria="Brevity.")["criteria"] == "Brevity."  # the caller's wins
    assert pair_example(load_pairs("pandalm", split="dev").records[0])["criteria"] == GENERAL_CRITERIA
