"""The GRPO loop: sample questions → roll out G episodes each → score → advantages → update.

One step::

    questions = sampler(step)                       # B questions (curriculum-aware, seeded)
    trajs     = rollout(env, generator, B × G)       # token-in-token-out, batched env steps
    adv       = group_advantages(rewards)            # (r - mean_g) / (std_g + eps)
    for epoch in range(K):                           # K passes, mini-batches, grad accumulation
        loss = grpo_loss(logp, old_logp, adv, mask)  # clipped ratio (+ beta * k3 KL)
        loss.backward(); clip; optimizer.step()
    log(metrics); maybe checkpoint / evaluate

Trajectories whose advantage is exactly 0 contribute no policy gradient; when ``beta == 0`` they
are not run through the model at all (their tokens still count in the loss normaliser, so the
result is the same as running them).

Under ``torchrun`` / ``accelerate launch`` each rank plays a share of the step's groups and the
gradients are summed, so the update is the single-process update over the whole batch (see
:mod:`.distributed`); rank 0 alone logs, evaluates and writes checkpoints.

Each part of a step has its own module (:mod:`.rollout`, :mod:`.advantages`, :mod:`.update`,
:mod:`.training_log`, :mod:`.guards`, :mod:`.checkpoint`); this one is the loop and the run's state
(model, optimiser, envs, generator, logger), which is why it is longer than ~400 lines: setting
that state up (LoRA, frozen layers, bf16 sampler copy, reference model, resume) is most of it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from research_agents.eval.metrics import summarise
from research_agents.generation.base import Generator, SamplingParams
from research_agents.grpo.advantages import group_advantages, zero_variance_groups
from research_agents.grpo.checkpoint import (
    CHECKPOINT,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from research_agents.grpo.config import GRPOConfig
from research_agents.grpo.distributed import init_distributed
from research_agents.grpo.evaluation import evaluate_policy, stratified_subset
from research_agents.grpo.guards import CollapseGuard, collapse_metrics
from research_agents.grpo.plot import plot_curves
from research_agents.grpo.policy import freeze_lower_layers
from research_agents.grpo.rollout import RolloutStats, Trajectory, rollout, rollout_seed
from research_agents.grpo.training_log import (
    MetricsLogger,
    episode_columns,
    episode_metrics,
    read_metrics,
)
from research_agents.grpo.update import PolicyUpdate

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from research_env.records import EpisodeRecord
    from research_env.vector import SearchQAVectorEnv


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _template_of(cfg: GRPOConfig) -> Any:
    """``cfg.template``, or the template read from ``cfg.template_file`` (``PATH[:CONSTANT]``)."""
    if not cfg.template_file:
        return cfg.template
    from research_env.templates import PromptTemplate

    path, constant = cfg.template_file, ""
    if ".py:" in path:
        path, constant = path.rsplit(":", 1)
    if cfg.protocol.startswith("searchr1"):
        return PromptTemplate.from_file(path, constant=constant or None, style="searchr1")
    return PromptTemplate.from_file(path, constant=constant or None)


def make_adamw(params: list[torch.nn.Parameter], **kwargs: Any) -> torch.optim.Optimizer:
    """AdamW with the fused kernel where torch has one for these parameters, else foreach.

    The fused CPU kernel takes SmolLM2's optimiser step from 0.77 to 0.17 s (one thread).
    """
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, foreach=True, **kwargs)


def _flat_groups(trajs: list[Trajectory]) -> list[int]:
    """Ids of the groups whose rewards are all equal (advantage 0: they train nothing)."""
    return zero_variance_groups([t.reward for t in trajs], [t.group_id for t in trajs])[0]


def _load_hook(spec: str) -> Callable[[Trajectory], float]:
    import importlib

    module, sep, attr = spec.partition(":")
    if not sep:
        raise ValueError(f"reward_hook: expected 'module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise ValueError(f"reward_hook: {spec!r} is not a callable")
    return cast(Callable[[Trajectory], float], fn)


class GRPOTrainer:
    """Train a causal LM with GRPO on SearchQA-v0.

    Args:
        config: The run's settings.
        model: A policy to train (default: load ``config.model``).
        tokenizer: Its tokenizer (default: load ``config.model``'s).
        generator: Rollout backend (default: from ``config.generator``).
        resume: Resume from this checkpoint folder, or ``True`` for
            ``<output_dir>/checkpoint``; a missing or unreadable checkpoint raises
            :class:`~research_agents.grpo.checkpoint.CheckpointError` (a resume never starts
            over).
    """

    def __init__(
        self,
        config: GRPOConfig,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        generator: Generator | None = None,
        resume: str | Path | bool = False,
    ) -> None:
        from research_agents.models import load_model, load_tokenizer
        from research_env.vector import SearchQAVectorEnv

        self.config = cfg = config
        from research_agents.runtime import apply_threads, resolve_dtype

        apply_threads(cfg.threads)
        _seed_everything(cfg.seed)
        self.dist = init_distributed()
        if cfg.questions_per_step < self.dist.world_size:
            raise ValueError(
                f"GRPOConfig.questions_per_step={cfg.questions_per_step} < WORLD_SIZE="
                f"{self.dist.world_size}: every rank needs at least one question per step"
            )
        self.output_dir = Path(cfg.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.model)
        # dtype "auto": fp32 master weights, bf16 autocast and a bf16 rollout copy where native
        weights = "float32" if cfg.dtype == "auto" else cfg.dtype
        self.model = model if model is not None else load_model(cfg.model, weights)
        compute = resolve_dtype(cfg.dtype, self.dist.device)
        master = next(cast(torch.nn.Module, self.model).parameters()).dtype
        self.autocast_dtype: torch.dtype | None = (
            compute if cfg.dtype == "auto" and compute != master else None
        )
        cast(torch.nn.Module, self.model).to(self.dist.device)
        self.model.config.use_cache = False
        if cfg.lora_rank > 0:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules="all-linear"
            )
            self.model = cast("PreTrainedModel", get_peft_model(self.model, lora))
        elif cfg.trainable_layers is not None:
            freeze_lower_layers(self.model, cfg.trainable_layers)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.dist.broadcast_parameters(params)
        self.ref_model: PreTrainedModel | None = None
        if cfg.beta > 0:
            import copy

            self.ref_model = copy.deepcopy(self.model).eval()
            for p in self.ref_model.parameters():
                p.requires_grad_(False)
        self.reward_hook = _load_hook(cfg.reward_hook) if cfg.reward_hook else None
        # One rank alone must not stop or roll back: distributed runs only warn.
        guarded = self.dist.world_size == 1 or cfg.guard == "warn"
        self.guard = CollapseGuard(cfg) if cfg.guard != "off" and guarded else None
        if generator is None:
            generator = self._make_generator()
        self.generator = generator

        env_kwargs: dict[str, Any] = {
            "dataset": cfg.dataset,
            "tokenizer": self.tokenizer,
            **cfg.env_settings(template=_template_of(cfg)).env_kwargs(),
        }
        local_groups = len(self.dist.share(cfg.questions_per_step))
        self.env: SearchQAVectorEnv = SearchQAVectorEnv(
            local_groups * cfg.group_size, split=cfg.train_split, **env_kwargs
        )
        self.eval_env_kwargs = env_kwargs | {"reward": "em"}
        self._eval_env: SearchQAVectorEnv | None = None
        self._fits: set[int] | None = None
        self.stop = self.env.envs[0].stop_strings
        self.examples = self.env.envs[0].examples
        apply_threads(cfg.threads)  # again: building the env may have loaded numba or faiss

        self.trainable_params = sum(p.numel() for p in params)
        self.optimizer = make_adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.last_update: PolicyUpdate | None = None  # the latest step's (its counts)
        self.step = 0
        self.elapsed_s = 0.0
        self._progress = True  # evaluation bars; train(progress=False) turns them off
        resume_path = self._resume_path(resume)
        if resume_path is not None:
            self.load_checkpoint(resume_path)
        self.logger = MetricsLogger(
            self.output_dir,
            tensorboard=cfg.tensorboard,
            wandb_project=cfg.wandb_project,
            resume_step=self.step if resume_path is not None else None,
            config=cfg.to_dict(),
            active=self.dist.is_main,
        )

    # ---------------------------------------------------------------- setup
    def _make_generator(self) -> Generator:
        if self.config.generator == "vllm":
            from research_agents.generation.vllm import VLLMGenerator

            return cast(
                Generator,
                VLLMGenerator.from_model(self.model, self.tokenizer, seed=self.config.seed),
            )
        from research_agents.generation.hf import HFGenerator

        return HFGenerator(self.model, self.tokenizer, dtype=self.autocast_dtype)

    @property
    def logprob_correction(self) -> str:
        """``logprob_correction`` with ``"auto"`` resolved (see :class:`GRPOConfig`)."""
        mode = self.config.logprob_correction
        if mode != "auto":
            return mode
        return "tis" if getattr(self, "autocast_dtype", None) is not None else "none"

    def _autocast(self) -> Any:
        """bf16 autocast for the trainer's forward/backward under ``dtype="auto"``."""
        dtype = getattr(self, "autocast_dtype", None)
        return torch.autocast(self.dist.device.type, dtype=dtype, enabled=dtype is not None)

    def _resume_path(self, resume: str | Path | bool) -> Path | None:
        """The checkpoint to resume from; an interrupted save's ``.old`` is moved back first.

        Raises:
            CheckpointError: If ``resume`` asks for a checkpoint and there is none.
        """
        if resume is False:
            return None
        path = self.output_dir / CHECKPOINT if resume is True else Path(resume)
        find_checkpoint(path, repair=False)  # every rank fails alike when there is nothing
        if self.dist.is_main:
            find_checkpoint(path)  # rank 0 alone renames and deletes
        self.dist.barrier()
        return path

    @property
    def eval_env(self) -> SearchQAVectorEnv:
        """The vector env over the held-out split (built on first use)."""
        if self._eval_env is None:
            from research_env.resolve import is_dataset_file
            from research_env.vector import SearchQAVectorEnv

            kwargs = dict(self.eval_env_kwargs)
            if self.config.eval_dataset:
                kwargs["dataset"] = self.config.eval_dataset
            # a QA file is one split: all of it
            split = "train" if is_dataset_file(kwargs["dataset"]) else self.config.eval_split
            self._eval_env = SearchQAVectorEnv(
                min(64, self.config.eval_size) if self.config.eval_size > 0 else 64,
                split=split,
                **kwargs,
            )
        return self._eval_env

    # ---------------------------------------------------------------- data
    def sample_questions(self, step: int, draw: int = 0, n: int | None = None) -> list[int]:
        """The B question indices of ``step`` (a pure function of seed, step and curriculum).

        Args:
            step: The training step.
            draw: ``0``: the step's questions; ``k > 0``: dynamic sampling's round ``k`` on this
                rank (another pure function of seed, step, round and rank).
            n: How many (default ``questions_per_step``).
        """
        n = self.config.questions_per_step if n is None else n
        types = self.config.types_at(step)
        fits = self._prompt_fits()
        pool = [
            i
            for i, e in enumerate(self.examples)
            if (not types or e.metadata.get("type") in types) and (fits is None or i in fits)
        ]
        if not pool:
            raise ValueError(f"step {step}: no training question of types {types}")
        key = [self.config.seed, step] + ([draw, self.dist.rank] if draw else [])
        rng = np.random.default_rng(key)
        picked = rng.choice(len(pool), n, replace=len(pool) < n)
        return [pool[int(i)] for i in picked]

    def _prompt_fits(self) -> set[int] | None:
        """Indices whose prompt has at most ``max_prompt_tokens`` tokens (``None``: no limit).

        ReSearch drops longer prompts from its dataset before training; so do we.
        """
        limit = self.config.max_prompt_tokens
        if limit is None:
            return None
        if self._fits is None:
            env = self.env.envs[0]
            self._fits = {
                i
                for i, e in enumerate(self.examples)
                if len(
                    self.tokenizer.encode(
                        env.template.render(e.question, self.tokenizer), add_special_tokens=False
                    )
                )
                <= limit
            }
        return self._fits

    # ---------------------------------------------------------------- loop
    def train(self, progress: bool = True) -> list[dict[str, Any]]:
        """Run until ``steps`` or ``time_budget_s``; checkpoint and plot at the end.

        Args:
            progress: Show a live bar (ETA) on stderr; one line per step is printed either way
                (rank 0 only).

        Returns:
            The metrics of every step of this call.
        """
        from research_agents.grpo.progress import StepProgress

        cfg = self.config
        history: list[dict[str, Any]] = []
        start_elapsed = self.elapsed_s
        t_start = time.perf_counter()
        bar = StepProgress(
            cfg, start=self.step, elapsed_s=self.elapsed_s, bar=progress, active=self.dist.is_main
        )
        self._progress = progress and self.dist.is_main
        try:
            while self.step < cfg.steps:
                if cfg.time_budget_s is not None and self.elapsed_s >= cfg.time_budget_s:
                    break
                metrics = self.train_step()
                # rank 0's clock decides, so every rank stops after the same step
                self.elapsed_s = self.dist.broadcast(start_elapsed + time.perf_counter() - t_start)
                metrics["time/elapsed_s"] = self.elapsed_s
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.dist.is_main:
                    metrics.update(summarise(self.evaluate(), seed=self.config.seed).as_metrics())
                measured = self.step  # a guard rollback moves self.step back
                stop = self.guard is not None and self.guard.after_step(self, metrics)
                self.logger.log(measured, metrics)
                history.append(metrics)
                bar.step(measured, metrics)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if stop:
                    break
            self.save_checkpoint()
        finally:
            bar.close()
            self.logger.close()
        if self.dist.is_main:
            self.plot()
        return history

    def train_step(self) -> dict[str, Any]:
        """One GRPO step; returns its metrics (the step counter advances)."""
        t0 = time.perf_counter()
        trajs, adv, rstats = self.collect()
        t_rollout = time.perf_counter() - t0
        every = self.config.samples_every
        if self.dist.is_main and every and self.config.samples_per_step and self.step % every == 0:
            self._save_samples(trajs, adv)
        t1 = time.perf_counter()
        update = self._update(trajs, adv)
        t_train = time.perf_counter() - t1
        self.generator.sync_weights(self.model)
        self.step += 1
        metrics = self._step_metrics(trajs, adv, rstats, update)
        if self.config.guard != "off":
            metrics.update(collapse_metrics(trajs))
        metrics.update(
            {
                "perf/step_s": time.perf_counter() - t0,
                "perf/rollout_s": t_rollout,
                "perf/train_s": t_train,
                "perf/train_tokens_per_s": update["perf/train_tokens"] / max(t_train, 1e-9),
                "train/lr": self.lr_at(self.step - 1),
                "train/rollout_seed": float(self.rollout_seed(self.step - 1)),
            }
        )
        return metrics

    def rollout_seed(self, step: int | None = None) -> int:
        """The sampler seed of the rollouts of ``step`` (default: the current one) on this rank.

        After a guard rollback the steps are played again from the same weights, so the seed
        moves with the rollback count: a stretch that made no update would otherwise replay
        itself exactly.
        """
        rollbacks = self.guard.rollbacks if self.guard is not None else 0
        at = self.step if step is None else step
        return rollout_seed(self.config.seed + rollbacks, at, self.dist.rank)

    def collect(self) -> tuple[list[Trajectory], torch.Tensor, RolloutStats]:
        """Play this rank's share of the current step's groups; score them.

        Under ``dynamic_sampling`` the groups whose rewards are all equal are then replaced,
        round by round, by fresh groups whose rewards differ (DAPO); the group ids stay.

        Returns:
            The trajectories (``group_id`` indexes the step's whole question list), their
            group-normalised advantages and the rollout's timing.
        """
        cfg = self.config
        questions = self.sample_questions(self.step)
        share = list(self.dist.share(len(questions)))
        trajs, stats = self._play([questions[g] for g in share], share, self.rollout_seed())
        for draw in range(1, cfg.dynamic_sampling + 1):
            flat = _flat_groups(trajs)
            if not flat:
                break
            fresh = self.sample_questions(self.step, draw=draw, n=len(flat))
            more, more_stats = self._play(fresh, flat, self.rollout_seed() + draw)
            stats.add(more_stats)
            stats.rounds += 1
            kept = set(flat) - set(_flat_groups(more))
            stats.replaced_groups += len(kept)
            trajs = [t for t in trajs if t.group_id not in kept]
            trajs += [t for t in more if t.group_id in kept]
        trajs.sort(key=lambda t: t.group_id)  # a stable sort: rollouts keep their order
        rewards = [t.reward for t in trajs]
        groups = [t.group_id for t in trajs]
        adv = group_advantages(rewards, groups, scale_std=cfg.scale_std, eps=cfg.adv_eps)
        return trajs, adv, stats

    def _play(
        self, questions: list[int], groups: list[int], seed: int
    ) -> tuple[list[Trajectory], RolloutStats]:
        """``group_size`` rollouts of each question, as groups ``groups``; rewards shaped."""
        cfg = self.config
        params = SamplingParams(
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            stop=self.stop,
        )
        trajs, rstats = rollout(
            self.env,
            self.generator,
            self.tokenizer,
            [q for q in questions for _ in range(cfg.group_size)],
            params,
            group_ids=[g for g in groups for _ in range(cfg.group_size)],
            response_prefix=cfg.response_prefix,
            turn_prefix=cfg.turn_prefix,
            final_prefix=cfg.final_prefix,
            answer_continuation=cfg.answer_continuation,
            max_response_tokens=cfg.max_response_tokens,
            seed=seed,
        )
        if self.reward_hook is not None:
            for t in trajs:
                t.info["env_reward"] = t.reward
                t.reward = float(self.reward_hook(t))
        return trajs, rstats

    def _save_samples(self, trajs: list[Trajectory], adv: torch.Tensor) -> None:
        """Append a few of this step's episodes, text and passages, to ``samples.jsonl``."""
        from research_agents.grpo.samples import append_samples

        append_samples(
            self.output_dir / "samples.jsonl",
            self.step + 1,
            trajs,
            adv.tolist(),
            self.env,
            self.config.samples_per_step,
        )

    def lr_at(self, step: int) -> float:
        """The learning rate of ``step``: linear warm-up over ``warmup_steps``, then constant."""
        warmup = self.config.warmup_steps
        return self.config.lr * (min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0)

    def _update(self, trajs: list[Trajectory], adv: torch.Tensor) -> dict[str, float]:
        """The step's policy update (:class:`~research_agents.grpo.update.PolicyUpdate`)."""
        update = PolicyUpdate(
            self.config,
            self.model,
            self.ref_model,
            self.optimizer,
            self.dist,
            int(self.tokenizer.pad_token_id or 0),
            self._autocast,
            self.logprob_correction,
        )
        self.last_update = update
        return update.run(trajs, adv, self.step, self.lr_at(self.step))

    def _step_metrics(
        self,
        trajs: list[Trajectory],
        adv: torch.Tensor,
        rstats: RolloutStats,
        update: dict[str, float],
    ) -> dict[str, Any]:
        """Episode statistics over the whole batch (every rank's trajectories)."""
        metrics: dict[str, Any] = episode_metrics(
            self.dist.concat(episode_columns(trajs, adv.tolist()))
        )
        (tokens,) = self.dist.all_sum([rstats.generated_tokens])
        generate_s, env_s, wall_s = self.dist.all_max(
            [rstats.generate_s, rstats.env_s, rstats.wall_s]
        )
        metrics.update(
            {
                "perf/gen_tokens_per_s": tokens / max(generate_s, 1e-9),
                "perf/env_time_share": env_s / max(wall_s, 1e-9),
                "perf/generate_s": generate_s,
                "perf/env_s": env_s,
                "train/step": self.step,
            }
        )
        if self.config.dynamic_sampling:
            (rounds,) = self.dist.all_max([rstats.rounds])
            (replaced,) = self.dist.all_sum([rstats.replaced_groups])
            metrics["train/dynamic_rounds"] = rounds
            metrics["train/dynamic_replaced"] = replaced
        metrics.update(update)
        return metrics

    # ---------------------------------------------------------------- eval
    def evaluate(
        self, size: int | None = None, split_indices: list[int] | None = None
    ) -> list[EpisodeRecord]:
        """Greedy evaluation on ``eval_split`` (``eval_size`` questions, stratified by type).

        Returns one record per question; ``eval.metrics.summarise`` aggregates them.
        """
        from research_agents.grpo.progress import eval_bar

        env = self.eval_env
        indices = split_indices or stratified_subset(
            env.envs[0].examples, self.config.eval_size if size is None else size, self.config.seed
        )
        split = self.config.eval_dataset or self.config.eval_split
        with eval_bar(len(indices), f"eval {split}", self._progress) as bar:
            return evaluate_policy(
                env,
                self.generator,
                self.tokenizer,
                indices,
                stop=self.stop,
                turns=self.config.turn_settings(),
                on_chunk=bar.update,
            )

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write model, optimiser, RNG states and the step, atomically (see :mod:`.checkpoint`).

        In a distributed run rank 0 writes (the replicas are equal) and the others wait for it.
        """
        final = Path(path) if path is not None else self.output_dir / CHECKPOINT
        if self.dist.is_main:
            save_checkpoint(self, final)
        self.dist.barrier()
        return final

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything :meth:`save_checkpoint` wrote."""
        load_checkpoint(self, Path(path))

    # ---------------------------------------------------------------- output
    def plot(self) -> Path | None:
        """Write ``curves.png`` from ``metrics.jsonl``; returns its path (None without data)."""
        path = self.output_dir / "metrics.jsonl"
        if not path.exists():
            return None
        records = read_metrics(path)
        if not records:
            return None
        return plot_curves(
            records, self.output_dir / "curves.png", title=f"GRPO: {self.config.model}"
        )
