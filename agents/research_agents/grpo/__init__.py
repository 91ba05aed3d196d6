"""Token-level GRPO for SearchQA-v0: one small module per step of the algorithm.

Read in this order:

* :mod:`.config`: :class:`~.config.GRPOConfig`, every knob with its docstring, and the presets;
* :mod:`.rollout`: token-in-token-out episodes through the vector env (observation tokens get
  loss mask 0, generated ids are never re-tokenised);
* :mod:`.turns`: one turn of an episode (forced prefix, budget, sampled ids, observation ids),
  shared by the rollout and the ``research`` evaluation agent;
* :mod:`.advantages`: group-normalised advantages;
* :mod:`.loss`: the clipped per-token loss, k3 KL, entropy bonus, aggregations;
* :mod:`.policy`: per-token log-probs of a causal LM; freezing lower layers;
* :mod:`.update`: one policy update (mini-batches, micro-batches, the log-prob correction);
* :mod:`.trainer`: the loop (sample, roll out, update, log, checkpoint);
* the rest: :mod:`.checkpoint`, :mod:`.training_log`, :mod:`.evaluation`, :mod:`.plot`,
  :mod:`.distributed`, reward shaping and guards.

Importing this package imports nothing heavy; torch is imported by the modules that need it.
"""
