"""Building verdict heads: targets, mixing, the multitask fit, selection, the CLI and its card."""

import json
import math

import pytest
import torch

from flame_reward.data.records import ClassRecord, PairRecord, ScoreRecord
from flame_reward.errors import InvalidInput
from flame_reward.train.features import SetFeatures, record_example
from flame_reward.train.heads import HeadsConfig, _rows, fit, routes_of, select, set_metrics
from flame_reward.train.heads_command import parse_caps


def test_targets_are_the_human_judgment_as_a_distribution():
    pair = PairRecord("p", "a", "b", "B", "x", None, "f", 1, criteria="C")
    ex, target, value = record_example(pair)
    assert ex["criteria"] == "C" and target == [[0.0, 1.0], [1.0, 0.0]] and value == 0.0
    assert record_example(PairRecord("p", "a", "b", "tie", "x", None, "f", 1))[1] == [[0.5, 0.5], [0.5, 0.5]]
    score = ScoreRecord("p", "r", 11 / 3, (1, 5), "s", "coherence", "f", 1, {"criteria": "K", "source_text": "doc"})
    ex, target, value = record_example(score)
    assert ex["source"] == "doc" and ex["criteria"] == "K"
    assert target[0][2] == pytest.approx(1 / 3) and target[0][3] == pytest.approx(2 / 3) and sum(target[0]) == 1.0
    assert sum(float(k + 1) * p for k, p in enumerate(target[0])) == pytest.approx(11 / 3)  # expected rating kept
    cls = ClassRecord("q", "r", "no", ("yes", "no"), "qags", None, "f", 1, {"criteria": "F"})
    assert record_example(cls)[1] == [[0.0, 1.0]]


def _synthetic(name: str, n: int, criteria: str, seed: int, signal: float = 3.0) -> SetFeatures:
    """Pairs whose label is readable from one hidden direction, that the raw logits ignore."""
    g = torch.Generator().manual_seed(seed)
    d = 16
    hidden = torch.randn(n, 2, d, generator=g)
    label_a = (torch.rand(n, generator=g) < 0.5)
    sign = torch.where(label_a, 1.0, -1.0)
    hidden[:, 0, 0] += signal * sign  # order as given: A better -> +
    hidden[:, 1, 0] -= signal * sign  # swapped order: the other way round
    t = torch.stack([label_a.float(), 1 - label_a.float()], -1)
    target = torch.stack([t, t.flip(-1)], 1)
    logp = torch.log(torch.full((n, 2, 2), 0.5))
    return SetFeatures(name, "pairwise", "pairwise", ("A", "B"), [f"{name}{i}" for i in range(n)], [""] * n,
                       [f"g{i}" for i in range(n)], [criteria] * n, logp, hidden, target, label_a.float())


def test_the_fit_finds_a_signal_and_a_huge_penalty_leaves_the_raw_model():
    sets = [_synthetic("s1", 200, "crit one", 0), _synthetic("s2", 120, "crit two", 1)]
    routes = routes_of(sets)
    assert [r.name for r in routes] == ["pairwise-crit-one", "pairwise-crit-two"]
    rows, mu, sd = _rows(sets, {f.name: list(range(len(f))) for f in sets}, routes, 2**16)
    fitted = fit(rows, routes, mu, sd, 1e-2, 1e-2)
    raw = set_metrics(sets[0], range(200))
    got = set_metrics(sets[0], range(200), fitted)
    assert raw["value"] == 0.5 and got["value"] > 0.95 and got["head"] == 200
    assert got["log_loss"] < raw["log_loss"] - 0.3
    frozen = fit(rows, routes, mu, sd, None, 1e6)
    assert float(frozen.delta(0, sets[0].hidden[0]).abs().max()) < 1e-3
    assert set_metrics(sets[0], range(200), frozen)["log_loss"] == pytest.approx(raw["log_loss"], abs=1e-3)


def test_mixing_is_examples_proportional_with_a_cap():
    sets = [_synthetic("big", 300, "c1", 0), _synthetic("small", 30, "c2", 1)]
    routes = routes_of(sets)
    rows, _, _ = _rows(sets, {f.name: list(range(len(f))) for f in sets}, routes, 2**16)
    assert torch.allclose(rows.weight, torch.full_like(rows.weight, 0.5))  # uncapped: each record weighs the same
    rows, _, _ = _rows(sets, {f.name: list(range(len(f))) for f in sets}, routes, 30)
    big, small = rows.weight[rows.route == 0].sum(), rows.weight[rows.route == 1].sum()
    assert float(big) == pytest.approx(float(small))  # capped at 30 each: equal shares


def test_selection_reads_only_the_train_carve_out_and_ships_routes_that_gain():
    sets = [_synthetic("s1", 240, "signal", 0), _synthetic("s2", 240, "noise", 1, signal=0.0)]
    chosen = select(sets, routes_of(sets), HeadsConfig(out="unused", l2_grid=((None, 1e-2), (1e-2, 1e-1))),
                    progress=False)
    assert sum(chosen["validation_records"].values()) + sum(chosen["fit_records"].values()) == 480
    names = [r.name for r in routes_of(sets)]
    assert [names[g] for g in chosen["keep"]] == ["pairwise-signal"]
    assert chosen["route_validation_gain"]["pairwise-signal"] > 0.3


def test_routes_need_their_own_criteria():
    with pytest.raises(InvalidInput, match="criteria"):
        routes_of([_synthetic("s", 10, "", 0)])


def test_caps_are_parsed_or_refused_naming_the_option():
    assert parse_caps("hh-helpful=10, llmbar,qags=all", "--sets") == {"hh-helpful": 10, "llmbar": None, "qags": None}
    for bad in ("x=ten", "x=0", " , "):
        with pytest.raises(InvalidInput, match="--sets"):
            parse_caps(bad, "--sets")


@pytest.mark.model
def test_train_heads_end_to_end_on_the_embedded_model(tmp_path, embedded_judge):
    """A small real run: features of 3 sets, selection, the head set, its card, then loading it."""
    from flame_reward.autorater import Autorater
    from flame_reward.cli import main
    from flame_reward.data.sets import HH_HELPFUL_CRITERIA

    out = tmp_path / "run"
    code = main(["train-heads", "--out", str(out), "--sets", "hh-helpful=24,hh-harmless=24,qags=16",
                 "--validation-fraction", "0.3", "--threads", "2"])
    assert code == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["train_records"] == {"hh-helpful": 24, "hh-harmless": 24, "qags": 16}
    assert "dev" not in report and report["selection"]["l2_route"] in (1e-3, 1e-2, 1e-1, 1.0)
    card = (out / "heads" / "MODEL_CARD.md").read_text()
    assert "flame-reward train-heads" in card and "have not been read" in card
    assert len(list((out / "features").glob("*.train.*.pt"))) == 3  # cached for a rerun
    if report["shipped_routes"]:
        judge = Autorater.from_pretrained(adapter=str(out / "heads"), max_length=1024)
        pair = ("Can you help me write a thank-you note?", "Sure: Dear Ann, thank you so much for the lovely gift!",
                "No.")
        v = judge.compare(*pair, criteria=HH_HELPFUL_CRITERIA)
        assert v.head == ("helpfulness" if "helpfulness" in report["shipped_routes"] else None)
        assert judge.compare(*pair).head is None
    assert math.isfinite(report["fit_seconds"])
