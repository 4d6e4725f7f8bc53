"""``flame_reward.v1`` messages (``reward_pb2``), generated; the service's method table is read from its descriptor."""
