"""Turn HH-RLHF pairs into a verl RL dataset whose rows carry the prompt in ``extra_info``.

verl's reward loop passes ``compute_score`` the response, ``ground_truth`` and
``extra_info`` but not the prompt, so flame-reward reads the prompt from
``extra_info["prompt"]`` (chat messages or a string). ``ground_truth`` is the human-chosen
response, the reference for ``mode: reference``.

    python examples/verl/prepare_hh_dataset.py --out ~/data/hh   # writes train.parquet, test.parquet
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from flame_reward.data import load_pairs


def messages(transcript: str) -> list[dict[str, str]]:
    """'\\n\\nHuman: ...\\n\\nAssistant: ...' -> chat messages (the last turn is the user's)."""
    turns = re.split(r"\n\n(Human|Assistant):[ ]?", "\n\n" + transcript.strip())[1:]
    out = [{"role": "user" if who == "Human" else "assistant", "content": text.strip()}
           for who, text in zip(turns[::2], turns[1::2])]
    if out and out[-1]["role"] == "assistant" and not out[-1]["content"]:
        out.pop()  # HH prompts end with an empty 'Assistant:' slot
    return out


def rows(split: str) -> list[dict]:
    out = []
    for i, r in enumerate(load_pairs("hh-helpful", split=split).records):
        prompt = messages(r.prompt)
        if not prompt or prompt[-1]["role"] != "user":
            continue
        chosen = r.response_a if r.label == "A" else r.response_b
        out.append({
            "data_source": "hh-helpful",
            "prompt": prompt,                                  # what the policy sees (verl's data.prompt_key)
            "ability": "chat",
            "reward_model": {"style": "model", "ground_truth": chosen.strip()},
            "extra_info": {"split": split, "index": i, "prompt": prompt},  # what the judge sees
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.parquet"), ("dev", "test.parquet")):
        frame = pd.DataFrame(rows(split))
        frame.to_parquet(out / name)
        print(f"{out / name}: {len(frame)} rows")


if __name__ == "__main__":
    main()
