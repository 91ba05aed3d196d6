"""Named GRPO runs: the papers' hyper-parameters on our env, and the CPU recipes.

``get_preset(name)`` returns a copy to change with :meth:`GRPOConfig.replace`; ``searchqa
train --preset NAME`` starts from one. Each preset's comment says where its numbers come from.
"""

from __future__ import annotations

from typing import Any

from research_agents.grpo.config import GRPOConfig
from research_env.data.factbook.qa import SINGLE_HOP_TYPES

# What ReSearch's and Search-R1's GRPO scripts share (both are verl recipes on 8 GPUs): a bf16
# vLLM sampler, groups of 5, one clipped epoch (eps 0.2) with a small k3 KL and entropy bonus, no
# masking of truncated responses, lr 1e-6 and plain sampling. Each paper's preset adds its own.
_VERL_PAPER: dict[str, Any] = dict(
    generator="vllm",
    dtype="bfloat16",
    group_size=5,
    # verl's ppo_mini_batch_size=256 counts prompts: 256 x 5 (docs/fidelity.md).
    mini_batch_size=1280,
    epochs=1,
    eps_low=0.2,
    eps_high=0.2,
    beta=0.001,
    kl_clamp=10.0,
    entropy_coef=0.001,
    weight_decay=0.01,
    mask_truncated=False,
    lr=1e-6,
    temperature=1.0,
    top_p=1.0,
)

# The multi-hop protocol (grpo/shaping.py; docs/results.md, "Multi-hop in two stages"): 4 turns
# with the research_hops prompt, a bare "<" forced on the middle turns, a corrective observation
# for an action without a closed tag, and EM less the search cost.
_MULTIHOP: dict[str, Any] = dict(
    template="research_hops",
    max_turns=4,
    turn_prefix="<",
    invalid_action="correct",
    reward="em",
    reward_hook="research_agents.grpo.shaping:em_search_cost",
)

PRESETS: dict[str, GRPOConfig] = {
    # ReSearch's hyper-parameters (Qwen2.5-7B, 8 GPUs) on our env: for GPU users.
    "research": GRPOConfig(
        **_VERL_PAPER,
        model="Qwen/Qwen2.5-7B-Instruct",
        template="research_instruct",
        reward="research",
        top_k=5,
        max_turns=64,
        max_new_tokens=8192,
        max_response_tokens=8192,
        # 256 prompts x 5 = 1280 = mini_batch_size: one optimiser update per batch, all on-policy.
        questions_per_step=256,
        steps=2000,
        last_turn="normal",
        protocol="research",
        max_prompt_tokens=512,
    ),
}
"""Named configurations (see :func:`get_preset`)."""

# Search-R1's GRPO script (train_grpo.sh, Qwen2.5-3B, 8 GPUs) on our env: for GPU users.
PRESETS["searchr1"] = GRPOConfig(
    **_VERL_PAPER,
    model="Qwen/Qwen2.5-3B",
    template="searchr1",
    protocol="searchr1",
    top_k=3,
    max_turns=3,  # max_turns=2 search turns, then the final turn without search
    last_turn="no_search",
    max_new_tokens=500,
    # Their context is 4096 tokens with up to 2048 for the prompt (max_start_length).
    max_response_tokens=2048,
    # 512 prompts x 5 over mini-batches of 1280: two optimiser updates per batch.
    questions_per_step=512,
    warmup_steps=286,  # lr_warmup_steps_ratio=0.285 of 1005 steps
    steps=1005,
)


# The CPU demo: SmolLM2-135M-Instruct on the embedded Factbook world.
PRESETS["factbook-smollm2"] = GRPOConfig(
    model="smollm2",
    template="research_compact",
    reward="f1",
    top_k=3,
    max_turns=2,
    max_new_tokens=32,
    max_response_tokens=400,
    temperature=0.7,
    response_prefix="<search>",
    # The answer turn opens the template's own answer format. With only "<answer>" forced,
    # SmolLM2 copies the prompt's example sentence ("The capital of X is Y.") and EM stays 0
    # however right the city is; opening \boxed{ makes the first tokens the answer itself.
    final_prefix="<answer>\\boxed{",
    question_types=SINGLE_HOP_TYPES,
    questions_per_step=8,
    group_size=4,
    mini_batch_size=32,
    # 1e-4: in 7 minutes (11 steps) held-out EM 0.083 -> 0.417 on the demo's 48 questions; 2e-5
    # needed ~30 steps before train EM moved at all (docs/results.md).
    lr=1e-4,
    trainable_layers=12,
    steps=60,
    time_budget_s=1800,
    eval_size=64,
    eval_split="test",
    output_dir="runs/factbook-smollm2",
)

# Multi-hop on the CPU, in two stages (docs/results.md, "Multi-hop in two stages").
# Stage 1 is the 2-turn single-hop recipe above, cut to 24 steps (about 12 minutes on two
# cores): "<search>" and "<answer>\boxed{" forced, so the policy learns to read a result.
PRESETS["factbook-smollm2-multihop-stage1"] = PRESETS["factbook-smollm2"].replace(
    # fp32, as every row of docs/results.md was trained: on a CPU with AMX-BF16, dtype="auto"
    # (bf16 rollouts and autocast) learned far worse in both stages, once each ("bf16 training")
    dtype="float32",
    threads="auto",
    steps=24,
    eval_size=0,
    checkpoint_every=12,
    output_dir="runs/factbook-smollm2-multihop-stage1",
)

# Stage 2 is stage 1 continued from its weights under the multi-hop protocol: 4 turns,
# "<search>" forced on the first and "<answer>\boxed{" on the last (answer-only) turn. On
# turns 2-3 only a bare "<" is forced:
# without it SmolLM2 ends its message right after a result, and the policy still writes the tag
# itself, "search" or "answer". The research_hops prompt has no <think> (with one, the "<"
# became <think> and prose) and shows one question answered with one search and one with two.
# The reward is EM (F1 on aliases paid "of" for "capital of France") less 0.1 per search beyond
# the first and per invalid action, taken only from right answers (grpo/shaping.py);
# reward/em logs plain EM beside it.
PRESETS["factbook-smollm2-multihop"] = PRESETS["factbook-smollm2-multihop-stage1"].replace(
    **_MULTIHOP,
    model="runs/factbook-smollm2-multihop-stage1/checkpoint/model",
    # top-4: the scripted one-search-per-hop rules reach 0.93-1.00 on every type of the
    # factbook-multihop suite with 4 passages per search (0.85 on three-hop with 3).
    top_k=4,
    max_response_tokens=1000,
    question_types=(),
    # single-hop and bridge first (most groups with a right answer are single-hop), then all
    curriculum=((0, (*SINGLE_HOP_TYPES, "bridge")), (8, ())),
    guard="rollback",
    steps=16,
    time_budget_s=3600,
    checkpoint_every=4,
    output_dir="runs/factbook-smollm2-multihop",
)

# Stage 2 that learns one query per hop (docs/results.md, "Learning the second query"): the
# same protocol, but every result ends with a line naming its countries (research_hops_titles),
# and a wrong answer earns 0.2 more when a query named the entity the question hides
# (em_search_cost_bridge; plain EM is logged beside it). Within about 14 steps the policy writes
# "Lusaka capital", then "Zambia ..."; the field ("Zambia currency") follows later, so 30 steps.
PRESETS["factbook-smollm2-multihop-bridge"] = PRESETS["factbook-smollm2-multihop"].replace(
    template="research_hops_titles",
    reward_hook="research_agents.grpo.shaping:em_search_cost_bridge",
    steps=30,
    time_budget_s=None,
    output_dir="runs/factbook-smollm2-multihop-bridge",
)

# The bridge stage with the search cost counted against each question's hops
# (em_hop_cost_bridge: 0.3 per search beyond them, the bridge credit only on questions of two
# hops or more), so a second search costs on single-hop questions and not on bridges.
PRESETS["factbook-smollm2-multihop-hops"] = PRESETS["factbook-smollm2-multihop-bridge"].replace(
    reward_hook="research_agents.grpo.shaping:em_hop_cost_bridge",
    output_dir="runs/factbook-smollm2-multihop-hops",
)

# The bridge stage where an answer the policy opens itself is boxed as on the last turn
# (answer_continuation): "<answer>" on turn 2 or 3 gets "\boxed{" forced after it. Without it a
# mid-episode answer was a sentence ("Dublin capital") that EM never pays, so stage 2 learned to
# write an empty "<answer></answer>" on turn 2 and wait for the last turn's forced \boxed{.
# An invalid action costs on the evidence credit too (em_search_cost_bridge_valid): under
# em_search_cost_bridge an unclosed answer ("\boxed{Rysy}</box>", corrected by the env) took
# the empty answer's place as a free turn within 5 steps.
PRESETS["factbook-smollm2-multihop-boxed"] = PRESETS["factbook-smollm2-multihop-bridge"].replace(
    answer_continuation="\\boxed{",
    reward_hook="research_agents.grpo.shaping:em_search_cost_bridge_valid",
    output_dir="runs/factbook-smollm2-multihop-boxed",
)

# Mechanics smoke run: a tiny random model, a couple of fast steps.
PRESETS["tiny"] = GRPOConfig(
    model="tiny",
    template="research_compact",
    reward="f1",
    top_k=2,
    max_turns=2,
    max_new_tokens=8,
    max_response_tokens=160,
    response_prefix="<search>",
    final_prefix="<answer>",
    questions_per_step=2,
    group_size=2,
    mini_batch_size=4,
    lr=1e-3,
    steps=2,
    eval_size=4,
    tensorboard=False,
    output_dir="runs/tiny",
)

# The tiny model under the multi-hop protocol (the demo's second stage in the tests).
PRESETS["tiny-multihop"] = PRESETS["tiny"].replace(
    **_MULTIHOP,
    max_response_tokens=320,
    output_dir="runs/tiny-multihop",
)


def get_preset(name: str) -> GRPOConfig:
    """Return a copy of the preset ``name``.

    Raises:
        ValueError: If there is no such preset.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}")
    return PRESETS[name].replace()
