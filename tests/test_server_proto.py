"""The committed generated code matches the .proto; the wire mapping loses nothing."""

from __future__ import annotations

import shutil

import pytest

from flame_reward.errors import InvalidInput
from flame_reward.results import ItemError, Verdict
from flame_reward.server import wire
from flame_reward.server.wire import pb


def test_generated_code_matches_the_proto():
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the dev extra) regenerates the code")
    from flame_reward.proto.generate import drift

    assert drift() == [], "run: python -m flame_reward.proto.generate"


def test_drift_check_notices_a_changed_proto(tmp_path):
    pytest.importorskip("grpc_tools")
    from flame_reward.proto.generate import PROTO, PROTO_ROOT, drift

    shutil.copytree(PROTO_ROOT, tmp_path / "protos")
    proto = tmp_path / "protos" / PROTO
    proto.write_text(proto.read_text().replace("message ItemError {", "message ItemError {\n  int32 code = 9;"))
    assert "reward_pb2.py" in drift(proto_root=tmp_path / "protos")


def test_example_round_trip_keeps_types_and_options():
    example = {"prompt": "p", "response": "r", "source": "s", "criteria": "c", "scale": (1, 10),
               "labels": ["yes", "no"], "allow_tie": True, "tie_margin": 0.25, "plugin_option": {"k": [1, 2.5]},
               "id": 17, "missing": None}
    item = pb.Item.FromString(wire.example_to_item(example).SerializeToString())
    assert dict(item.fields) == {"prompt": "p", "response": "r", "source": "s"}
    assert item.options.scale.high == 10 and list(item.options.labels) == ["yes", "no"]
    back = wire.item_to_example(item)
    assert back == {"prompt": "p", "response": "r", "source": "s", "criteria": "c", "scale": (1, 10),
                    "labels": ["yes", "no"], "allow_tie": True, "tie_margin": 0.25, "plugin_option": {"k": [1, 2.5]},
                    "id": 17}
    # ill-typed options travel as JSON so the server's validation names them
    odd = wire.item_to_example(wire.example_to_item({"scale": "1-5", "labels": "yes", "allow_tie": "no"}))
    assert odd == {"scale": "1-5", "labels": "yes", "allow_tie": "no"}
    # request defaults < item options < item fields
    assert wire.item_to_example(item, {"criteria": "default", "extra": 1})["criteria"] == "c"


def test_pair_presence_is_kept():
    pair = wire.example_to_pair({"prompt": "p", "response_a": ""})
    back = wire.pair_to_example(pb.Pair.FromString(pair.SerializeToString()))
    assert back == {"prompt": "p", "response_a": ""}  # response_b stays missing, response_a stays empty


def test_verdict_round_trip_is_exact_and_ordered():
    v = Verdict(task="pointwise", label="3", score=2.718281828459045,
                distribution={str(i): p for i, p in zip(range(5, 0, -1), (0.1, 0.2, 0.3, 0.15, 0.25))},
                orders=({"5": 0.1, "4": 0.2, "3": 0.3, "2": 0.15, "1": 0.25},), tokens=123, truncated=("response",))
    msg = pb.ItemResult.FromString(wire.result_to_proto(0, v).SerializeToString())
    back = wire.results_from_proto([msg])[0]
    assert back == v and list(back.distribution) == ["5", "4", "3", "2", "1"]
    err = wire.results_from_proto([wire.result_to_proto(4, ItemError(4, "scale", "bad"))])[0]
    assert err == ItemError(4, "scale", "bad")


def test_channel_target():
    from flame_reward.client import channel_target

    assert channel_target("dns:///reward.svc:50051") == "dns:///reward.svc:50051"
    assert channel_target("127.0.0.1:1") == "127.0.0.1:1"
    assert channel_target(["127.0.0.1:1", "10.0.0.2:2"]) == "ipv4:127.0.0.1:1,10.0.0.2:2"
    assert channel_target("127.0.0.1:1,127.0.0.1:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert channel_target(["[::1]:1", "[::1]:2"]) == "ipv6:[::1]:1,[::1]:2"
    with pytest.raises(InvalidInput, match="target"):
        channel_target(["127.0.0.1:1", "nohostport"])
    with pytest.raises(InvalidInput, match="mix"):
        channel_target(["127.0.0.1:1", "[::1]:2"])
