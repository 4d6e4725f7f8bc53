"""flame-reward inside other training and serving stacks, each a thin face over the core or the sidecar.

* :mod:`~flame_reward.integrations.openrlhf`: OpenRLHF's remote-reward contract (the HTTP
  sidecar's ``/get_reward`` and the file mode :mod:`~flame_reward.integrations.openrlhf_file`).
* :mod:`~flame_reward.integrations.verl`: an async ``compute_score`` for verl's reward loop.
* :mod:`~flame_reward.integrations.ray_serve`: a Ray Serve deployment (``serve run``).
* :mod:`~flame_reward.integrations.ray_data`: offline scoring of row files on a Ray actor pool.

Nothing here is imported by the rest of the package; each module imports its stack lazily.
"""
