"""The eval-pairs and bias commands end to end on a tiny file (tiny random Llama; one embedded-model run)."""

import json

import pytest

from flame_reward.cli import build_parser, main
from flame_reward.data.formats import split_hh_transcripts
from flame_reward.eval.command import run_bias, run_eval_pairs


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return str(path)


def _point(p_label, p_other):
    """The documented accuracy point: 1 when the human-preferred response wins, 0.5 on an exact tie."""
    return 1.0 if p_label > p_other else 0.5 if p_label == p_other else 0.0


def _recomputed(pairs):
    """Every headline figure of an eval-pairs set, recomputed from its per-pair lines (labels A/B)."""
    def mean(xs):
        return sum(xs) / len(xs)

    both, first, second, consistent, picks_first = [], [], [], [], []
    for p in pairs:
        o0, o1 = p["orders"]
        label, other = p["label"], "B" if p["label"] == "A" else "A"
        # The debiased distribution: order 0 as given, order 1 swapped back.
        debiased = {"A": (o0["A"] + o1["B"]) / 2, "B": (o0["B"] + o1["A"]) / 2}
        assert abs(p["score"] - debiased["A"]) <= 1e-9
        both.append(_point(debiased[label], debiased[other]))
        first.append(_point(o0[label], o0[other]))
        second.append(_point(o1[other], o1[label]))
        consistent.append(float((o0["A"] >= o0["B"]) == (o1["B"] >= o1["A"])))
        picks_first.append(0.5 * ((o0["A"] > o0["B"]) + (o1["A"] > o1["B"])))
    return {"accuracy": mean(both), "accuracy_first_order": mean(first), "accuracy_second_order": mean(second),
            "position_consistency": mean(consistent), "prefers_first_position": mean(picks_first)}


ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "subset": "alpacaeval-easy"},
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome.", "subset": "alpacaeval-easy"},
    "{broken",
    {"prompt": "Largest planet?", "chosen": "Jupiter.", "rejected": "Mars.", "subset": "refusals-dangerous"},
    {"prompt": "Opposite of hot?", "chosen": "Cold.", "rejected": "", "subset": "refusals-dangerous"},
]


def test_eval_pairs_cli_with_tiny_judge(tmp_path, tiny_judge, capsys):
    f = _write(tmp_path / "rb.jsonl", ROWS)
    out = tmp_path / "out"
    args = build_parser().parse_args(["eval-pairs", f, "--out", str(out), "-q"])
    assert run_eval_pairs(args, judge=tiny_judge) == 0
    report = json.loads((out / "eval_pairs.json").read_text())
    (s,) = report["sets"]
    assert s["rows"] == 5 and s["judged"] == 3 and s["bad"] == 2
    assert {b["row"] for b in s["bad_rows"]} == {3, 5}
    pairs = [json.loads(x) for x in (out / "eval_pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 4 and [p["row"] for p in pairs if "error" in p] == [5]
    # The report's figures are exactly the documented arithmetic over its own per-pair lines.
    for name, value in _recomputed([p for p in pairs if "error" not in p]).items():
        assert abs(s[name] - value) <= 1e-12, name
    assert set(s["rewardbench"]["sections"]) == {"Chat", "Safety"}
    assert (out / "eval_pairs.png").stat().st_size > 1000
    md = (out / "eval_pairs.md").read_text()
    assert "| rb.jsonl" not in md and "line 5: response_b" in md
    assert "# Preference accuracy" in capsys.readouterr().out
    # --strict: bad rows make the exit status 1.
    args = build_parser().parse_args(["eval-pairs", f, "-q", "--strict"])
    assert run_eval_pairs(args, judge=tiny_judge) == 1


def test_bias_cli_with_tiny_judge(tmp_path, tiny_judge):
    f = _write(tmp_path / "rb.jsonl", ROWS[:2] + ROWS[3:4])
    out = tmp_path / "bias"
    args = build_parser().parse_args(["bias", f, "--out", str(out), "-q", "--own-max-new-tokens", "4"])
    assert run_bias(args, judge=tiny_judge) == 0
    report = json.loads((out / "bias.json").read_text())
    assert report["pairs"] == 3
    assert list(report["probes"]) == ["order", "compassion", "length", "bandwagon", "attention", "egocentric"]
    for name, p in report["probes"].items():
        if name == "egocentric" and p["pairs"] < 3:  # an empty own answer is skipped and listed
            assert any(s["probe"] == "egocentric" for s in report["skipped"])
            continue
        assert p["pairs"] == 3 and 0.0 <= p["rate"] <= 1.0 and p["ci95"][0] <= p["rate"] <= p["ci95"][1]
    assert "own_answers" in report and (out / "bias.png").stat().st_size > 1000
    assert "Wilson" in (out / "bias.md").read_text()


def test_bias_usage_errors(tmp_path, capsys):
    f = _write(tmp_path / "rb.jsonl", ROWS[:1])
    assert main(["bias", f, "--probes", "order,nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["eval-pairs", "no-such-set-or-file"]) == 2
    assert "neither a file nor a named pair set" in capsys.readouterr().err


@pytest.mark.model
def test_eval_pairs_embedded_default(tmp_path, embedded_judge):
    """eval-pairs reports the core's own verdicts, and its figures are an exact count over them.

    Measured on these four pairs (embedded default, shipped adapter): accuracy 0.25 (1 of 4),
    0.00 swapped, 1.00 as given, position consistency 0.00, picks first 1.00: the position
    lock docs/evaluation.md describes, so no accuracy floor is asserted; the check is that the
    report equals a recount of the core's verdicts (scores within 1e-6, figures exact).
    """
    rows = [
        {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4.", "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5."},
        {"chosen": "\n\nHuman: Capital of France?\n\nAssistant: Paris.",
         "rejected": "\n\nHuman: Capital of France?\n\nAssistant: I don't know."},
        {"chosen": "\n\nHuman: Say hello.\n\nAssistant: Hello!", "rejected": "\n\nHuman: Say hello.\n\nAssistant: No."},
        {"chosen": "\n\nHuman: Opposite of hot?\n\nAssistant: Cold.",
         "rejected": "\n\nHuman: Opposite of hot?\n\nAssistant: Hot."},
    ]
    f = _write(tmp_path / "hh.jsonl", rows)
    args = build_parser().parse_args(["eval-pairs", f, "--out", str(tmp_path / "o"), "-q"])
    assert run_eval_pairs(args, judge=embedded_judge) == 0
    (s,) = json.loads((tmp_path / "o" / "eval_pairs.json").read_text())["sets"]
    assert s["rows"] == s["judged"] == 4 and s["bad"] == 0
    pairs = [json.loads(x) for x in (tmp_path / "o" / "eval_pairs.jsonl").read_text().splitlines()]
    assert [p["label"] for p in pairs] == ["A"] * 4  # HH: the chosen reply is response A
    direct = embedded_judge.compare_batch([split_hh_transcripts(r["chosen"], r["rejected"]) for r in rows])
    for p, v in zip(pairs, direct):
        assert abs(p["score"] - v.score) <= 1e-6 and p["verdict"] == v.label
        assert all(abs(p["orders"][i][k] - v.orders[i][k]) <= 1e-6 for i in range(2) for k in ("A", "B"))
    wins = sum(v.distribution["A"] > v.distribution["B"] for v in direct)
    assert s["accuracy"] == wins / 4
    for name, value in _recomputed(pairs).items():
        assert abs(s[name] - value) <= 1e-12, name
