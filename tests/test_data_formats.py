"""Pairwise format adapters, file reading, records, splits and data location, on hand-made rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from flame_reward.data import (
    PAIR_FORMATS,
    BadRow,
    PairFields,
    PairFormat,
    PairReadResult,
    PairRecord,
    ScoreRecord,
    detect_format,
    location,
    read_pairs,
    split_hh_transcripts,
    split_of,
)
from flame_reward.data import get_pair_format
from flame_reward.errors import DataError, InvalidInput
from flame_reward.hookspecs import hookimpl
from flame_reward.plugins import get_plugin_manager


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def only_record(result: PairReadResult) -> PairRecord:
    assert result.bad == [], result.bad
    assert len(result.records) == 1
    return result.records[0]


# --- RewardBench ---------------------------------------------------------------------


def test_rewardbench_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rb.jsonl", [{"prompt": "Q?", "chosen": "good", "rejected": "bad", "subset": "chat"}])
    rec = only_record(read_pairs(path))
    assert (rec.prompt, rec.response_a, rec.response_b, rec.label, rec.subset) == ("Q?", "good", "bad", "A", "chat")
    assert (rec.dataset, rec.source, rec.row) == ("rewardbench", str(path), 1)


# --- HH-RLHF -------------------------------------------------------------------------

SINGLE_CHOSEN = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?"
SINGLE_REJECTED = "\n\nHuman: Hi there\n\nAssistant: Go away."
MULTI_PREFIX = "\n\nHuman: Tell me about wolves.\n\nAssistant: They are canines.\n\nHuman: More?\n\nAssistant:"


def test_hh_single_turn(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": SINGLE_CHOSEN, "rejected": SINGLE_REJECTED}])
    rec = only_record(read_pairs(path, dataset="hh"))
    assert rec.prompt == "Human: Hi there\n\nAssistant:"
    assert (rec.response_a, rec.response_b, rec.label, rec.dataset) == ("Hello! How can I help?", "Go away.", "A", "hh")


def test_hh_multi_turn_keeps_earlier_turns_in_prompt(tmp_path: Path) -> None:
    row = {"chosen": MULTI_PREFIX + " They live in packs.", "rejected": MULTI_PREFIX + " No."}
    rec = only_record(read_pairs(write_jsonl(tmp_path / "hh.jsonl", [row]), format="hh-rlhf"))
    assert rec.prompt == "Human: Tell me about wolves.\n\nAssistant: They are canines.\n\nHuman: More?\n\nAssistant:"
    assert (rec.response_a, rec.response_b) == ("They live in packs.", "No.")


def test_hh_reply_containing_assistant_marker_is_still_the_final_turn() -> None:
    # Seen in the real data: a reply repeats the marker; the shared prefix decides the cut.
    chosen = "\n\nHuman: Cost?\n\nAssistant: Umm. Just a second...\n\nAssistant: About $50."
    rejected = "\n\nHuman: Cost?\n\nAssistant: Check a web site."
    prompt, a, b = split_hh_transcripts(chosen, rejected)
    assert prompt == "Human: Cost?\n\nAssistant:"
    assert a == "Umm. Just a second...\n\nAssistant: About $50."
    assert b == "Check a web site."


def test_hh_responses_sharing_a_start_are_split_at_the_marker() -> None:
    prompt, a, b = split_hh_transcripts("\n\nHuman: x\n\nAssistant: I like it", "\n\nHuman: x\n\nAssistant: I hate it")
    assert (prompt, a, b) == ("Human: x\n\nAssistant:", "I like it", "I hate it")


def test_hh_bad_rows(tmp_path: Path) -> None:
    rows = [
        {"chosen": SINGLE_CHOSEN, "rejected": SINGLE_CHOSEN},  # identical replies
        {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"},  # no shared turn
        # Dialogues that diverge at an earlier Assistant turn and go on.
        {
            "chosen": MULTI_PREFIX + " x",
            "rejected": "\n\nHuman: Tell me about wolves.\n\nAssistant: Dogs.\n\nHuman: Ok\n\nAssistant: y",
        },
        {"chosen": SINGLE_CHOSEN, "rejected": SINGLE_CHOSEN + "\n\nHuman: thanks\n\nAssistant: welcome"},
        {"chosen": SINGLE_CHOSEN, "rejected": SINGLE_REJECTED},  # the one good row
    ]
    result = read_pairs(write_jsonl(tmp_path / "hh.jsonl", rows), format="hh-rlhf")
    assert [b.row for b in result.bad] == [1, 2, 3, 4]
    assert "identical" in result.bad[0].error
    assert "share no prefix" in result.bad[1].error
    assert "diverge" in result.bad[2].error and "diverge" in result.bad[3].error
    assert [r.row for r in result.records] == [5]
    assert result.total_rows == 5 == len(result.records) + len(result.bad)


# --- PandaLM -------------------------------------------------------------------------


def pandalm_row(votes: tuple[int, int, int], **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"instruction": "Rewrite.", "input": "", "response1": "r1", "response2": "r2"}
    row.update({f"annotator{i}": v for i, v in enumerate(votes, start=1)})
    row.update(extra)
    return row


@pytest.mark.parametrize(
    ("votes", "label"),
    [((2, 2, 2), "B"), ((1, 0, 1), "A"), ((2, 1, 2), "B"), ((0, 0, 2), "tie"), ((0, 1, 2), "tie"), ((1, 2, 0), "tie")],
)
def test_pandalm_majority_and_tie(tmp_path: Path, votes: tuple[int, int, int], label: str) -> None:
    rec = only_record(read_pairs(write_jsonl(tmp_path / "p.jsonl", [pandalm_row(votes)])))
    assert rec.dataset == "pandalm"
    assert rec.label == label


def test_pandalm_prompt_joins_instruction_and_input(tmp_path: Path) -> None:
    rows = [pandalm_row((1, 1, 1), input="The text."), pandalm_row((1, 1, 1), input="  ")]
    result = read_pairs(write_jsonl(tmp_path / "p.jsonl", rows))
    assert [r.prompt for r in result.records] == ["Rewrite.\n\nThe text.", "Rewrite."]


def test_pandalm_json_boolean_response_becomes_text(tmp_path: Path) -> None:
    rec = only_record(read_pairs(write_jsonl(tmp_path / "p.jsonl", [pandalm_row((1, 1, 1), response1=True)])))
    assert rec.response_a == "True"


def test_pandalm_bad_vote_names_the_annotator(tmp_path: Path) -> None:
    result = read_pairs(write_jsonl(tmp_path / "p.jsonl", [pandalm_row((1, 7, 1))]), format="pandalm")
    assert result.records == []
    assert result.bad[0].error.startswith("annotator2:")


# --- Auto-J and LLMBar ---------------------------------------------------------------


def test_auto_j_labels_and_scenario(tmp_path: Path) -> None:
    rows = [
        {"scenario": "chitchat", "label": label, "prompt": "p", "response 1": "x", "response 2": "y"}
        for label in (0, 1, 2)
    ]
    result = read_pairs(write_jsonl(tmp_path / "aj.jsonl", rows))
    assert [r.label for r in result.records] == ["A", "B", "tie"]
    assert {r.subset for r in result.records} == {"chitchat"}
    assert result.records[0].dataset == "auto-j"


def test_llmbar_json_array(tmp_path: Path) -> None:
    rows = [
        {"input": "i", "output_1": "o1", "output_2": "o2", "label": 1},
        {"input": "i", "output_1": "o1", "output_2": "o2", "label": "2"},
        {"input": "i", "output_1": "o1", "output_2": "o2", "label": 3},
    ]
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(rows))
    result = read_pairs(path, subset="Natural")
    assert [(r.label, r.row, r.subset) for r in result.records] == [("A", 1, "Natural"), ("B", 2, "Natural")]
    assert result.bad == [BadRow(str(path), 3, "label: must be one of [1, 2], got 3")]


# --- reading: malformed lines, missing fields, gzip, detection -----------------------

GOOD = {"prompt": "p", "chosen": "c", "rejected": "r"}


def test_malformed_json_line_reported_with_line_number(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [GOOD, '{"prompt": "p", "chosen": ', "", GOOD, "[1, 2]"])
    result = read_pairs(path)
    assert [r.row for r in result.records] == [1, 4]  # the blank line 3 is not a row
    assert [(b.row, b.error.split(":")[0]) for b in result.bad] == [
        (2, "invalid JSON"),
        (5, "expected a JSON object, got list"),
    ]
    assert result.bad[0].source == str(path)
    assert result.total_rows == 4 == len(result.records) + len(result.bad)


def test_missing_field_is_named(tmp_path: Path) -> None:
    rows = [GOOD, {"prompt": "p", "chosen": "c", "rejected": None}, {"prompt": "p", "chosen": 3, "rejected": "r"}]
    result = read_pairs(write_jsonl(tmp_path / "x.jsonl", rows), format="rewardbench")
    assert [(b.row, b.error) for b in result.bad] == [
        (2, "rejected: missing"),
        (3, "chosen: must be a string, got int"),
    ]


def test_missing_column_in_auto_detected_file(tmp_path: Path) -> None:
    rows = [{"scenario": "s", "prompt": "p", "response 1": "a", "response 2": "b"}]  # no label
    result = read_pairs(write_jsonl(tmp_path / "x.jsonl", rows))
    assert result.bad[0].error == "label: missing"


def test_gzip_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(GOOD) + "\n")
    assert only_record(read_pairs(path)).response_a == "c"


def test_detection_skips_an_unreadable_first_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", ["not json", {"chosen": SINGLE_CHOSEN, "rejected": SINGLE_REJECTED}])
    result = read_pairs(path)
    assert result.records[0].dataset == "hh-rlhf"
    assert [b.row for b in result.bad] == [1]


@pytest.mark.parametrize(
    ("row", "name"),
    [
        (GOOD, "rewardbench"),
        ({"chosen": SINGLE_CHOSEN, "rejected": SINGLE_REJECTED}, "hh-rlhf"),
        (pandalm_row((1, 1, 1)), "pandalm"),
        ({"prompt": "p", "response 1": "a", "response 2": "b", "label": 0}, "auto-j"),
        ({"input": "i", "output_1": "a", "output_2": "b", "label": 1}, "llmbar"),
    ],
)
def test_detect_format(row: dict[str, Any], name: str) -> None:
    assert detect_format(row).name == name


def test_unknown_columns_raise_listing_formats(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="rewardbench.*hh-rlhf.*pandalm.*auto-j.*llmbar"):
        detect_format({"question": "q"})
    with pytest.raises(DataError, match="known formats"):
        read_pairs(write_jsonl(tmp_path / "x.jsonl", [{"question": "q"}]))
    with pytest.raises(DataError, match="unknown pair format 'nope'"):
        read_pairs(write_jsonl(tmp_path / "y.jsonl", [GOOD]), format="nope")


def test_unreadable_files_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported"):
        read_pairs(tmp_path / "x.csv")
    (tmp_path / "obj.json").write_text(json.dumps(GOOD))
    with pytest.raises(DataError, match="JSON array"):
        read_pairs(tmp_path / "obj.json")


class QaPrefPlugin:
    """A plugin adding one pairwise format, registered the way an entry point would be."""

    fmt = PairFormat(
        "qa-pref",
        "question, better, worse",
        lambda row: "better" in row,
        lambda row: PairFields(row["question"], row["better"], row["worse"], "A"),
    )

    @staticmethod
    @hookimpl
    def register_pair_formats(register: Any) -> None:
        register(QaPrefPlugin.fmt)


class TakenNamePlugin:
    @staticmethod
    @hookimpl
    def register_pair_formats(register: Any) -> None:
        register(PairFormat("llmbar", "another llmbar", lambda row: False, lambda row: PairFields("p", "a", "b", "A")))


def test_plugin_pair_format(tmp_path: Path) -> None:
    pm = get_plugin_manager()
    builtin = list(PAIR_FORMATS)
    pm.register(QaPrefPlugin, name="test-qa-pref")
    try:
        # pluggy runs the latest registration first: a plugin registered at run time is
        # tried before the formats loaded with the plugin manager.
        assert list(PAIR_FORMATS) == ["qa-pref", *builtin]
        rows = [{"question": "q", "better": "b", "worse": "w"}, {"better": "b", "worse": "w"}]
        result = read_pairs(write_jsonl(tmp_path / "x.jsonl", rows))
        assert [(r.dataset, r.prompt, r.row) for r in result.records] == [("qa-pref", "q", 1)]
        assert result.bad[0].error == "question: missing"
    finally:
        pm.unregister(name="test-qa-pref")
    assert list(PAIR_FORMATS) == builtin
    with pytest.raises(DataError, match="unknown pair format 'qa-pref'"):
        read_pairs(tmp_path / "x.jsonl", format="qa-pref")


def test_a_taken_format_name_is_an_error() -> None:
    pm = get_plugin_manager()
    pm.register(TakenNamePlugin, name="test-taken")
    try:
        with pytest.raises(InvalidInput) as err:
            get_pair_format("llmbar")
        assert err.value.field == "name" and "'llmbar' is registered twice" in str(err.value)
    finally:
        pm.unregister(name="test-taken")
    assert get_pair_format("llmbar").description.startswith("input, output_1")


# --- records -------------------------------------------------------------------------


def test_swapped_flips_label_and_keeps_key() -> None:
    rec = PairRecord("p", "x", "y", "A", "d", None, "f.jsonl", 3)
    swapped = rec.swapped()
    assert (swapped.response_a, swapped.response_b, swapped.label, swapped.row) == ("y", "x", "B", 3)
    assert swapped.swapped() == rec
    assert swapped.key == rec.key
    tie = PairRecord("p", "x", "y", "tie", "d", None, "f.jsonl", 3)
    assert tie.swapped().label == "tie"


def test_key_is_stable_and_content_based() -> None:
    rec = PairRecord("p", "x", "y", "A", "d", None, "f.jsonl", 3)
    moved = PairRecord("p", "x", "y", "A", "d", "s", "other.jsonl", 99)
    assert rec.key == moved.key  # where a row sits never changes its key
    assert len(rec.key) == 40
    assert rec.key != PairRecord("p2", "x", "y", "A", "d", None, "f.jsonl", 3).key
    assert rec.key != PairRecord("p", "x", "y", "A", "d2", None, "f.jsonl", 3).key


def test_records_with_extra_are_hashable() -> None:
    rec = ScoreRecord("p", "r", 3.0, (1, 5), "d", "coherence", "f", 1, {"source_text": "a"})
    assert rec in {rec}


# --- splits --------------------------------------------------------------------------


def test_split_is_deterministic_and_about_a_fifth() -> None:
    keys = [f"key-{i}" for i in range(1000)]
    first = [split_of(k) for k in keys]
    assert [split_of(k) for k in reversed(keys)] == list(reversed(first))
    assert 170 <= first.count("dev") <= 230
    assert set(first) == {"train", "dev"}


def test_split_fraction_bounds() -> None:
    assert split_of("k", 0.0) == "train"
    assert split_of("k", 1.0) == "dev"
    with pytest.raises(InvalidInput, match="dev_fraction"):
        split_of("k", 1.5)


def test_result_splits_partition_records_and_keep_bad_rows() -> None:
    recs = [PairRecord(f"p{i}", "x", "y", "A", "d", None, "f", i) for i in range(200)]
    result = PairReadResult(recs, [BadRow("f", 999, "oops")], 201)
    train, dev = result.in_split("train"), result.in_split("dev")
    assert isinstance(dev, PairReadResult)
    assert sorted(r.row for r in train.records + dev.records) == list(range(200))
    assert train.bad == dev.bad == result.bad
    with pytest.raises(InvalidInput, match="split"):
        result.in_split("test")


def test_group_split_keeps_a_prompt_on_one_side() -> None:
    recs = [PairRecord(f"p{i % 10}", f"x{i}", "y", "A", "d", None, "f", i) for i in range(100)]
    dev = PairReadResult(recs).in_split("dev", by="group")
    train = PairReadResult(recs).in_split("train", by="group")
    assert not {r.prompt for r in dev.records} & {r.prompt for r in train.records}


# --- location ------------------------------------------------------------------------


def test_env_var_overrides_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAME_REWARD_DATA", str(tmp_path))
    assert location.shared_data_dir() == tmp_path.resolve()
    monkeypatch.setenv("FLAME_REWARD_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="not a directory"):
        location.shared_data_dir()


def test_location_found_beside_a_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo" / "sub").mkdir(parents=True)
    monkeypatch.delenv("FLAME_REWARD_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "repo" / "sub")
    monkeypatch.setattr(location, "__file__", str(tmp_path / "elsewhere" / "location.py"))
    assert location.shared_data_dir() == (tmp_path / "shared" / "data").resolve()


def test_location_not_found_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "repo").mkdir()
    monkeypatch.delenv("FLAME_REWARD_DATA", raising=False)
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setattr(location, "__file__", str(tmp_path / "pkg" / "location.py"))
    if any((p / "shared" / "data").is_dir() for p in tmp_path.parents):
        pytest.skip("a shared/data folder exists above the temporary directory")
    with pytest.raises(DataError, match="FLAME_REWARD_DATA"):
        location.shared_data_dir()
