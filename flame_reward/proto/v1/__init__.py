"""``flame_reward.v1`` messages (``reward_pb2``) and service stubs (``reward_pb2_grpc``), generated."""
