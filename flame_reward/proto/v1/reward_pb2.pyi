from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Options(_message.Message):
    __slots__ = ("criteria", "labels", "scale", "allow_tie", "tie_margin", "extra")
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TIE_FIELD_NUMBER: _ClassVar[int]
    TIE_MARGIN_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    criteria: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    scale: Scale
    allow_tie: bool
    tie_margin: float
    extra: _struct_pb2.Struct
    def __init__(self, criteria: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., scale: _Optional[_Union[Scale, _Mapping]] = ..., allow_tie: _Optional[bool] = ..., tie_margin: _Optional[float] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Scale(_message.Message):
    __slots__ = ("low", "high")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("fields", "options")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.ScalarMap[str, str]
    options: Options
    def __init__(self, fields: _Optional[_Mapping[str, str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("request_id", "task", "items", "options")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    task: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    options: Options
    def __init__(self, request_id: _Optional[str] = ..., task: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("request_id", "results", "model")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    model: str
    def __init__(self, request_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class Pair(_message.Message):
    __slots__ = ("prompt", "response_a", "response_b", "fields", "options")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_A_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_B_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    response_a: str
    response_b: str
    fields: _containers.ScalarMap[str, str]
    options: Options
    def __init__(self, prompt: _Optional[str] = ..., response_a: _Optional[str] = ..., response_b: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("request_id", "pairs", "task", "options")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    pairs: _containers.RepeatedCompositeFieldContainer[Pair]
    task: str
    options: Options
    def __init__(self, request_id: _Optional[str] = ..., pairs: _Optional[_Iterable[_Union[Pair, _Mapping]]] = ..., task: _Optional[str] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("request_id", "results", "model")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    model: str
    def __init__(self, request_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class RankRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "candidates", "strategy", "options", "seed", "rounds", "pair_task", "point_task")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    PAIR_TASK_FIELD_NUMBER: _ClassVar[int]
    POINT_TASK_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: str
    candidates: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    options: Options
    seed: int
    rounds: int
    pair_task: str
    point_task: str
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., candidates: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ..., options: _Optional[_Union[Options, _Mapping]] = ..., seed: _Optional[int] = ..., rounds: _Optional[int] = ..., pair_task: _Optional[str] = ..., point_task: _Optional[str] = ...) -> None: ...

class RankResponse(_message.Message):
    __slots__ = ("request_id", "order", "scores", "judge_calls", "strategy", "details", "model")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    JUDGE_CALLS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    order: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedCompositeFieldContainer[RankScore]
    judge_calls: int
    strategy: str
    details: _struct_pb2.Struct
    model: str
    def __init__(self, request_id: _Optional[str] = ..., order: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[_Union[RankScore, _Mapping]]] = ..., judge_calls: _Optional[int] = ..., strategy: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class RankScore(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class ListTaskTypesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTaskTypesResponse(_message.Message):
    __slots__ = ("task_types",)
    TASK_TYPES_FIELD_NUMBER: _ClassVar[int]
    task_types: _containers.RepeatedCompositeFieldContainer[TaskTypeInfo]
    def __init__(self, task_types: _Optional[_Iterable[_Union[TaskTypeInfo, _Mapping]]] = ...) -> None: ...

class TaskTypeInfo(_message.Message):
    __slots__ = ("name", "description", "fields", "options", "generative", "pairwise")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    GENERATIVE_FIELD_NUMBER: _ClassVar[int]
    PAIRWISE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldInfo]
    options: _containers.RepeatedScalarFieldContainer[str]
    generative: bool
    pairwise: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldInfo, _Mapping]]] = ..., options: _Optional[_Iterable[str]] = ..., generative: _Optional[bool] = ..., pairwise: _Optional[bool] = ...) -> None: ...

class FieldInfo(_message.Message):
    __slots__ = ("name", "description", "required", "truncatable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    required: bool
    truncatable: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., required: _Optional[bool] = ..., truncatable: _Optional[bool] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("index", "verdict", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    verdict: Verdict
    error: ItemError
    def __init__(self, index: _Optional[int] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("task", "label", "score", "distribution", "orders", "tokens", "truncated", "head")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    task: str
    label: str
    score: float
    distribution: _containers.RepeatedCompositeFieldContainer[LabelProbability]
    orders: _containers.RepeatedCompositeFieldContainer[Distribution]
    tokens: int
    truncated: _containers.RepeatedScalarFieldContainer[str]
    head: str
    def __init__(self, task: _Optional[str] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., distribution: _Optional[_Iterable[_Union[LabelProbability, _Mapping]]] = ..., orders: _Optional[_Iterable[_Union[Distribution, _Mapping]]] = ..., tokens: _Optional[int] = ..., truncated: _Optional[_Iterable[str]] = ..., head: _Optional[str] = ...) -> None: ...

class Distribution(_message.Message):
    __slots__ = ("probabilities",)
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    probabilities: _containers.RepeatedCompositeFieldContainer[LabelProbability]
    def __init__(self, probabilities: _Optional[_Iterable[_Union[LabelProbability, _Mapping]]] = ...) -> None: ...

class LabelProbability(_message.Message):
    __slots__ = ("label", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    probability: float
    def __init__(self, label: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("field", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    message: str
    def __init__(self, field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
