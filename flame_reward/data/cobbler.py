"""CoBBLEr's human bias study (Koo et al., 2023): the rates humans showed, as reference figures.

Read from ``cobbler/competitive-llms/human/batches/human_bias/`` in the shared data folder;
``flame-reward bias`` prints them beside the judge's probe rates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flame_reward.data.location import shared_data_dir
from flame_reward.errors import DataError


def cobbler_human_reference(data_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Mean human bias rates from CoBBLEr's human study, keyed by our probe names.

    Read from ``cobbler/competitive-llms/human/batches/human_bias/<bias>/all_bias_<bias>.json``
    (25 batches x 3 annotators each). Mapping and definitions, as we read the files:
    ``order`` = first-order + last-order rate (preferred the same *position* in both orders,
    i.e. an inconsistent preference), ``bandwagon`` = followed the bandwagon statement,
    ``attention`` = CoBBLEr's "distraction", ``length`` = CoBBLEr's "salience": the share
    of choices for the *longer* response (a preference rate, not a change rate). CoBBLEr
    has no human figures for compassion or egocentric bias. Returns ``{}`` when the data
    is absent.
    """
    try:
        root = Path(data_dir) if data_dir is not None else shared_data_dir()
    except DataError:
        return {}
    base = root / "cobbler" / "competitive-llms" / "human" / "batches" / "human_bias"

    def rates(bias: str) -> dict[str, list[float]]:
        path = base / bias / f"all_bias_{bias}.json"
        if not path.is_file():
            return {}
        out: dict[str, list[float]] = {}
        for batch in json.loads(path.read_text(encoding="utf-8")):
            for key, values in batch.items():
                out.setdefault(key, []).extend(float(x) for x in values)
        return out

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    ref: dict[str, dict[str, Any]] = {}
    order = rates("order")
    if order.get("first-order") and order.get("last_order"):
        ref["order"] = {"rate": mean(order["first-order"]) + mean(order["last_order"]),
                        "n": len(order["first-order"]),
                        "definition": "CoBBLEr humans: first-order + last-order bias (same position both orders)"}
    for ours, theirs, key, what in (
        ("bandwagon", "bandwagon", "bandwagon", "followed the bandwagon statement"),
        ("attention", "distraction", "distraction", "swayed by the distraction sentence"),
        ("length", "salience", "longer", "chose the longer response (preference, not change)"),
    ):
        values = rates(theirs).get(key)
        if values:
            ref[ours] = {"rate": mean(values), "n": len(values), "definition": f"CoBBLEr humans: {what}"}
    return ref


__all__ = ["cobbler_human_reference"]
