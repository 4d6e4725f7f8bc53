"""Training a judge: human-labelled records -> FLAMe task examples -> LoRA adapters.

- :mod:`~flame_reward.train.examples` and :mod:`~flame_reward.train.targets`: records to
  labelled examples, and examples to token ids with the loss on the EVALUATION target;
- :mod:`~flame_reward.train.mixture` and :mod:`~flame_reward.train.recipes`: which named
  sets, mixed how (FLAMe multitask, FLAMe-RM, FLAMe-Opt-RM with tail-patch weights);
- :mod:`~flame_reward.train.sft`, :mod:`~flame_reward.train.cached` and
  :mod:`~flame_reward.train.probe`: the trainers (TRL SFT, top-layer LoRA on cached
  activations, closed-form probe LoRA);
- :mod:`~flame_reward.train.command`: ``flame-reward train``.

Nothing is imported here: the trainers pull in torch, TRL and PEFT, which judging never needs.
"""
