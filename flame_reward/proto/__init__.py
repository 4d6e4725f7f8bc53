"""Generated gRPC/protobuf code for ``protos/flame_reward/v1/reward.proto``.

The generated modules are committed (``flame_reward/proto/v1/reward_pb2*.py``) so an
editable install needs no build step; ``tests/test_server_proto.py`` regenerates them
with grpcio-tools into a temporary directory and fails when they drift from the .proto.
Regenerate after editing the .proto with ``python -m flame_reward.proto.generate``.
"""
