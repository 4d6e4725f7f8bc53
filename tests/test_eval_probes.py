"""Bias probes: each transformation on fixed examples, the named task, and the rate arithmetic."""

import math

import pytest

from flame_reward.data import PairRecord
from flame_reward.data.cobbler import cobbler_human_reference
from flame_reward.eval.probe_stats import PairOutcome, control_summary, probe_stats, side, wilson_interval
from flame_reward.eval.probes import (
    BANDWAGON,
    COMPASSION_NAMES,
    DISTRACTOR,
    PADDING,
    PROBES,
    ProbePair,
    add_bandwagon,
    add_distractor,
    chat_turns,
    name_responses,
    pad_verbose,
    present,
    swap_order,
)
from flame_reward.tasks.registry import get_task_type

PAIR = ProbePair("What is 2+2?", better="4", worse="5", source="f.jsonl", row=7)


def test_pair_from_record_reads_better_and_worse():
    rec = PairRecord("p", "x", "y", "B", "d", None, "f", 3)
    pair = ProbePair.from_record(rec)
    assert (pair.better, pair.worse, pair.row) == ("y", "x", 3)
    assert ProbePair.from_record(PairRecord("p", "x", "y", "tie", "d", None, "f", 4)) is None


def test_present_and_swap():
    ex, letter = present("p", "T", "O", target_first=True)
    assert ex == {"prompt": "p", "response_a": "T", "response_b": "O"} and letter == "A"
    ex2, letter2 = present("p", "T", "O", target_first=False)
    assert (ex2["response_a"], ex2["response_b"], letter2) == ("O", "T", "B")
    assert swap_order(ex) == ex2
    named = {**ex, "name_a": "GPT-4", "name_b": "Alpaca"}
    assert swap_order(named) == {**ex2, "name_a": "Alpaca", "name_b": "GPT-4"}


def test_order_probe_uses_the_control_presentations():
    task, ex0, l0 = PROBES["order"].build(PAIR, False)
    _, ex1, l1 = PROBES["order"].build(PAIR, True)
    assert task == "pairwise" and ex0 == swap_order(ex1)
    assert (ex0["response_b"], l0) == ("5", "B") and (ex1["response_a"], l1) == ("5", "A")


def test_compassion_names_travel_with_the_target():
    ex, letter = present("p", "worse", "better", target_first=False)
    named = name_responses(ex, letter)
    assert named["name_b"] == COMPASSION_NAMES[0] and named["name_a"] == COMPASSION_NAMES[1]
    for first in (False, True):
        task, ex, letter = PROBES["compassion"].build(PAIR, first)
        assert task == "pairwise_named"
        target_field = "response_a" if letter == "A" else "response_b"
        name_field = "name_a" if letter == "A" else "name_b"
        assert ex[target_field] == PAIR.worse and ex[name_field] == "GPT-4"


def test_pairwise_named_renders_names_and_keeps_ab_verdicts():
    task = get_task_type("pairwise_named")  # registered through the register_task_types hook
    ex = task.validate({"prompt": "p", "response_a": "x", "response_b": "y", "name_a": "GPT-4", "name_b": "Alpaca"})
    text = task.render(ex).text()
    assert "response A (written by GPT-4) and response B (written by Alpaca)" in text
    assert "response A (GPT-4):\nx" in text and "response B (Alpaca):\ny" in text
    assert task.verdicts(ex) == ["A", "B"] and task.swap is None
    plain = get_task_type("pairwise").render(get_task_type("pairwise").validate(
        {"prompt": "p", "response_a": "x", "response_b": "y"})).text()
    # Only the names differ from the plain pairwise rendering.
    assert text.replace(" (written by GPT-4)", "").replace(" (written by Alpaca)", "") \
        .replace(" (GPT-4)", "").replace(" (Alpaca)", "") == plain
    with pytest.raises(ValueError, match="name_b"):
        task.validate({"prompt": "p", "response_a": "x", "response_b": "y", "name_a": "GPT-4"})


def test_pad_verbose_is_deterministic_and_long_enough():
    padded = pad_verbose("Short answer.", "A somewhat longer better answer.")
    assert padded == pad_verbose("Short answer.", "A somewhat longer better answer.")
    assert padded.startswith("Short answer.\n\n" + PADDING[0])
    assert len(padded) >= 2 * len("Short answer.") and len(padded) >= len("A somewhat longer better answer.") + 200
    long_text = "x" * 5000
    assert len(pad_verbose(long_text)) - len(long_text) <= 1500 + max(len(s) for s in PADDING) + 2
    _, ex, letter = PROBES["length"].build(PAIR, True)
    assert ex["response_a"].startswith("5\n\n") and ex["response_b"] == "4" and letter == "A"


def test_bandwagon_points_at_the_worse_response():
    ex, letter = present("Q?", "worse", "better", target_first=False)
    out = add_bandwagon(ex, letter)
    assert out["prompt"] == "Q?\n\n90% of people believe Response B is better."
    assert out["prompt"].endswith(BANDWAGON.format(percent=90, letter="B"))
    for first in (False, True):
        _, ex, letter = PROBES["bandwagon"].build(PAIR, first)
        worse_letter = "A" if ex["response_a"] == PAIR.worse else "B"
        assert letter == worse_letter and ex["prompt"].endswith(f"Response {worse_letter} is better.")


def test_attention_inserts_the_distractor():
    out = add_distractor({"prompt": "Q?", "response_a": "a", "response_b": "b"}, "A")
    assert out["prompt"] == "Q?\n\n" + DISTRACTOR.format(letter="A")
    assert out["response_a"] == "a" and out["response_b"] == "b"


def test_egocentric_replaces_the_worse_with_own_output():
    from dataclasses import replace

    _, ex, letter = PROBES["egocentric"].build(replace(PAIR, own="I think 4."), True)
    assert (ex["response_a"], ex["response_b"], letter) == ("I think 4.", "4", "A")
    with pytest.raises(ValueError, match="own"):
        PROBES["egocentric"].build(PAIR, True)


def test_wilson_interval():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_side():
    assert (side(0.7), side(0.2), side(0.5)) == ("target", "other", "tie")


def test_order_stats_from_raw_verdicts():
    # control[0]: target second; control[1]: target first. P(target) in each.
    outcomes = [
        PairOutcome((0.3, 0.8), (0.3, 0.8)),  # picks first both times -> changed, toward
        PairOutcome((0.7, 0.2), (0.7, 0.2)),  # picks second both times -> changed, away
        PairOutcome((0.2, 0.3), (0.2, 0.3)),  # prefers the other side both times -> consistent
        PairOutcome((0.9, 0.6), (0.9, 0.6)),  # prefers the target both times -> consistent
    ]
    s = probe_stats("order", outcomes, PROBES["order"].target)
    assert s["target"] == "the response shown first" and s["pairs"] == 4 and s["rate"] == 0.5 and s["toward"] == 0.25 and s["away"] == 0.25
    assert s["ci95"] == list(wilson_interval(2, 4))


def test_change_stats_toward_away_and_shift():
    outcomes = [
        PairOutcome((0.4, 0.4), (0.6, 0.6)),  # other -> target: toward
        PairOutcome((0.6, 0.6), (0.4, 0.4)),  # target -> other: away
        PairOutcome((0.2, 0.4), (0.3, 0.45)),  # stays other, shift +0.075
        PairOutcome((0.4, 0.6), (0.6, 0.6)),  # tie -> target: toward
    ]
    s = probe_stats("bandwagon", outcomes)
    assert s["rate"] == 0.75 and s["toward"] == 0.5 and s["away"] == 0.25
    assert s["mean_shift"] == pytest.approx((0.2 - 0.2 + 0.075 + 0.1) / 4)
    # raw: per presentation side changes: 2 + 2 + 0 + 1
    assert s["raw_change_rate"] == pytest.approx(5 / 8)


def test_egocentric_rate_is_prefers_own():
    outcomes = [PairOutcome((0.4, 0.4), (0.7, 0.7)), PairOutcome((0.4, 0.4), (0.3, 0.3)),
                PairOutcome((0.6, 0.6), (0.8, 0.6))]
    s = probe_stats("egocentric", outcomes)
    assert s["rate"] == pytest.approx(2 / 3) and s["count"] == 2
    assert s["control_prefers_worse"] == pytest.approx(1 / 3)
    assert s["changed"] == pytest.approx(1 / 3)


def test_cobbler_reference_rates():
    ref = cobbler_human_reference()
    if not ref:
        pytest.skip("CoBBLEr data not present")
    assert set(ref) == {"order", "bandwagon", "attention", "length"}
    assert 0 < ref["order"]["rate"] < 1 and ref["bandwagon"]["n"] == 75


def test_chat_turns_from_hh_transcripts():
    assert chat_turns("Human: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:") == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"}]
    assert chat_turns("What is 2+2?") == [{"role": "user", "content": "What is 2+2?"}]


def test_control_summary():
    c = control_summary([(0.3, 0.8), (0.45, 0.6)])  # (target second, target first)
    assert c["mean_p_target"] == pytest.approx((0.55 + 0.525) / 2)
    assert c["median_margin"] == pytest.approx((0.05 + 0.025) / 2)
    assert c["p_first_shown"] == pytest.approx((0.7 + 0.8 + 0.55 + 0.6) / 4)
    assert c["prefers_target"] == 1.0 and control_summary([]) == {"pairs": 0}
