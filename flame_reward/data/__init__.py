"""Readers for the human-labelled datasets in the shared data folder.

``load_pairs("hh-helpful")``, ``load_scores("summeval")`` and ``load_classes("qags")`` read
a named set (built-in or registered by a plugin: :func:`named_sets`); :func:`read_pairs`
reads any pairwise file in a registered format (:data:`PAIR_FORMATS`). Every reader
returns its records together with the rows it could not read.
"""

from flame_reward.data.formats import (
    PAIR_FORMATS,
    PairFields,
    PairFormat,
    detect_format,
    get_pair_format,
    iter_json_rows,
    read_pairs,
    split_hh_transcripts,
)
from flame_reward.data.location import shared_data_dir
from flame_reward.data.records import (
    PAIR_LABELS,
    SPLIT_BY,
    BadRow,
    ClassReadResult,
    ClassRecord,
    PairReadResult,
    PairRecord,
    ReadResult,
    ScoreReadResult,
    ScoreRecord,
)
from flame_reward.data.sets import (
    DATASETS,
    KINDS,
    NamedSet,
    load_classes,
    load_pairs,
    load_scores,
    named_sets,
)
from flame_reward.data.splits import SPLITS, split_of

__all__ = [
    "DATASETS",
    "KINDS",
    "PAIR_FORMATS",
    "PAIR_LABELS",
    "SPLITS",
    "SPLIT_BY",
    "BadRow",
    "ClassReadResult",
    "ClassRecord",
    "NamedSet",
    "PairFields",
    "PairFormat",
    "PairReadResult",
    "PairRecord",
    "ReadResult",
    "ScoreReadResult",
    "ScoreRecord",
    "detect_format",
    "get_pair_format",
    "iter_json_rows",
    "load_classes",
    "load_pairs",
    "load_scores",
    "named_sets",
    "read_pairs",
    "shared_data_dir",
    "split_hh_transcripts",
    "split_of",
]
