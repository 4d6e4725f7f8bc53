"""The judge shipped with the embedded default: verdict heads on their exact criteria, the raw
model everywhere else (bit for bit), and per-set figures on fixed dev records with margins.

Figures are measured on this repository's CPU and asserted at the measured value minus a
stated margin (the margin covers float differences between machines and thread counts,
which can flip a verdict sitting at 0.5); a target that is not met is a strict xfail that
carries the measured figure. docs/training.md has the full dev table these come from.
"""

import json
from pathlib import Path

import pytest

from flame_reward.data.sets import (
    GENERAL_CRITERIA,
    HH_HARMLESS_CRITERIA,
    HH_HELPFUL_CRITERIA,
    QAGS_CRITERIA,
    STORY_CRITERIA,
    SUMMARY_CRITERIA,
)
from flame_reward.models.loading import packaged_adapter_dir

pytestmark = [pytest.mark.model]

SHIPPED = packaged_adapter_dir(None)
CARD = json.loads((SHIPPED / "heads.json").read_text()) if SHIPPED and (SHIPPED / "heads.json").is_file() else {}
ROUTES = {r["name"]: r["criteria"] for r in CARD.get("routes", [])}

#: Criteria no head was trained for: the default, three of a user's own, two paraphrases of
#: the trained ones (a paraphrase is another criteria: documented to get the raw model).
OFF_ROUTE = {
    "default": None,
    "user: concise": "Prefer the response that is shorter and gets to the point.",
    "user: medical": "Prefer the response a careful physician would give.",
    "user: humour": "Which response is funnier?",
    "paraphrase: helpful": "Helpfulness: prefer the response that does what the user asked, answering directly, "
                           "accurately and usefully while engaging with the conversation.",
    "paraphrase: harmless": HH_HARMLESS_CRITERIA.replace("less harmful", "least harmful"),
}


@pytest.fixture(scope="module")
def raw_judge(embedded_judge):
    """The raw model over the same loaded weights (a head set never changes them)."""
    from flame_reward.autorater import Autorater
    from flame_reward.scoring import Scorer

    s = embedded_judge.scorer
    return Autorater(Scorer(s.backend, s.tokenizer, batch_size=s.batch_size, max_length=s.max_length),
                     model_name=embedded_judge.model_name)


def _pairs(n=4):
    from flame_reward.eval.sets import first_records

    return [{"prompt": r.prompt, "response_a": r.response_a, "response_b": r.response_b}
            for r in first_records("hh-helpful", "dev", n)]


def test_the_shipped_judge_is_a_head_set_on_by_default(embedded_judge):
    assert SHIPPED is not None and (SHIPPED / "heads.json").is_file()
    assert not (SHIPPED / "adapter_config.json").exists()  # no LoRA: the weights stay the raw model's
    assert CARD["base_model"] == "smollm2-135m-instruct"  # a portable id, not a machine's path
    assert embedded_judge.info["adapter"] == str(SHIPPED) and len(embedded_judge.info["adapter_sha256"]) == 64
    assert embedded_judge.info["heads"] == [r["name"] for r in CARD["routes"]]


@pytest.mark.parametrize("name", list(OFF_ROUTE))
def test_off_its_criteria_the_verdicts_are_the_raw_models(embedded_judge, raw_judge, name):
    items = [dict(p, **({"criteria": OFF_ROUTE[name]} if OFF_ROUTE[name] else {})) for p in _pairs()]
    got, want = embedded_judge.judge("pairwise", items), raw_judge.judge("pairwise", items)
    for g, w in zip(got, want):
        assert g.head is None and g.raw_score is None
        assert g.orders == w.orders and g.score == w.score  # bit for bit, not within a tolerance


def test_other_task_types_and_scales_stay_raw(embedded_judge, raw_judge):
    from flame_reward.eval.sets import first_records
    from flame_reward.train.features import record_example

    summary = record_example(first_records("summeval", "dev", 1)[0])[0]
    qags = record_example(first_records("qags", "dev", 1)[0])[0]
    cases = [("pointwise", {k: v for k, v in summary.items() if k != "criteria"}),  # default criteria
             ("pointwise", dict(summary, scale=(1, 10))),  # a trained criteria on another scale
             ("classification", dict(qags, labels=["supported", "unsupported"])),  # other labels
             ("pairwise", dict(_pairs(1)[0], criteria=HH_HELPFUL_CRITERIA, allow_tie=True))]  # a tie option
    for task, item in cases:
        g, w = embedded_judge.judge(task, [item])[0], raw_judge.judge(task, [item])[0]
        assert g.head is None and g.distribution == w.distribution, (task, item.get("scale"), item.get("labels"))


def test_each_trained_criteria_uses_its_head(embedded_judge, raw_judge):
    from flame_reward.eval.sets import first_records
    from flame_reward.train.features import record_example

    examples = {
        HH_HELPFUL_CRITERIA: ("pairwise", dict(_pairs(1)[0], criteria=HH_HELPFUL_CRITERIA)),
        HH_HARMLESS_CRITERIA: ("pairwise", dict(_pairs(1)[0], criteria=HH_HARMLESS_CRITERIA)),
        GENERAL_CRITERIA: ("pairwise", dict(_pairs(1)[0], criteria=GENERAL_CRITERIA)),
        STORY_CRITERIA: ("pointwise", record_example(first_records("openmeva", "dev", 1)[0])[0]),
        QAGS_CRITERIA: ("classification", record_example(first_records("qags", "dev", 1)[0])[0]),
        **{text: ("pointwise", dict(record_example(first_records("summeval", "dev", 1)[0])[0], criteria=text))
           for text in SUMMARY_CRITERIA.values()},
    }
    for name, criteria in ROUTES.items():
        task, item = examples[criteria]
        got, want = embedded_judge.judge(task, [item])[0], raw_judge.judge(task, [item])[0]
        assert got.head == name
        assert got.raw_score == pytest.approx(want.score, abs=1e-9)  # the raw verdict rides along
        assert got.distribution != want.distribution


#: CI: the first N dev records of a set in file order (pairwise: non-tie), through the public
#: API. Measured on this CPU (max_length 1024): (judge, raw). Margin: 2 records' worth.
#: QAGS's route did not gain on the train carve-out and was not shipped: the raw model judges it.
FIXED_N = 40
FIXED = {
    "hh-helpful": (0.750, 0.650),
    "hh-harmless": (0.675, 0.375),
    "pandalm": (0.775, 0.700),
    "qags": (0.725, 0.725),
}
MARGIN = 2 / FIXED_N


@pytest.fixture(scope="module")
def fixed_figures(embedded_judge):
    from flame_reward.eval.sets import first_records, judge_records

    return {name: judge_records(embedded_judge, name, first_records(name, "dev", FIXED_N)) for name in FIXED}


@pytest.mark.parametrize("name", list(FIXED))
def test_fixed_dev_records_per_set(fixed_figures, name):
    got = fixed_figures[name]
    judge, raw = FIXED[name]
    assert got["errors"] == 0
    assert got["raw"]["value"] == pytest.approx(raw, abs=MARGIN), got
    if name == "qags":
        assert got["head"] == 0 and got["judge"] == got["raw"]
    else:
        assert got["head"] == got["n"]
        assert got["judge"]["value"] >= judge - MARGIN, got


def _dev_report():
    path = Path(__file__).resolve().parent.parent / "docs" / "eval" / "shipped-judge" / "train_report.json"
    return json.loads(path.read_text())


@pytest.mark.slow
def test_every_dev_set_through_the_public_api_matches_the_report(embedded_judge):
    """All of the dev records the report measured, judged through Autorater.judge: the
    figures equal the report's (computed from cached features), per set, raw and judge."""
    from flame_reward.eval.sets import judge_records
    from flame_reward.train.features import cap_records, load_records

    report = _dev_report()
    seed = report["config"]["seed"]
    for name, cap in report["config"]["dev_sets"].items():
        got = judge_records(embedded_judge, name, cap_records(load_records(name, "dev"), cap, seed))
        want = report["dev"][name]
        for side in ("raw", "judge"):
            assert got[side]["value"] == pytest.approx(want[side]["value"], abs=0.02), (name, side, got, want)


# --- the targets, on the dev report (dev read once; the slow test above ties the
# report to the public API) --------------------------------------------------------------


def _side(report, names, side):
    got = [(report["dev"][n][side]["value"], report["dev"][n][side]["pairs"]) for n in names]
    return sum(v * n for v, n in got) / sum(n for _, n in got)


def test_target_hh_helpful_and_harmless_mean():
    report = _dev_report()
    mean = (report["dev"]["hh-helpful"]["judge"]["value"] + report["dev"]["hh-harmless"]["judge"]["value"]) / 2
    assert mean >= 0.67, mean  # measured 0.683 (raw 0.511)


def test_target_pandalm_auto_j_llmbar_pooled():
    report = _dev_report()
    assert _side(report, ("pandalm", "auto-j", "llmbar"), "judge") >= 0.56  # measured 0.617 (raw 0.528)


def test_target_summary_tau_above_raw_on_average():
    report = _dev_report()
    for name in ("summeval", "dialsummeval"):
        assert report["dev"][name]["judge"]["value"] > report["dev"][name]["raw"]["value"], name


def test_target_no_set_worse_than_raw_beyond_its_interval():
    report = _dev_report()
    for name, both in report["dev"].items():
        assert both["judge"]["value"] >= both["raw"]["value"] - both["raw"]["interval"], (name, both)


def test_the_report_read_dev_once_after_selection():
    report = _dev_report()
    assert report["dev_read_once"] is True
    assert set(report["selection"]["validation_records"]) == set(report["train_records"])
    heads = json.loads((SHIPPED / "heads.json").read_text())
    assert heads["dev_splits_read"] is True and [r["name"] for r in heads["routes"]] == report["shipped_routes"]
