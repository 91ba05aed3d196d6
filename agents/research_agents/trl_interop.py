r"""Train on SearchQA-v0 with TRL's ``GRPOTrainer``, through its ``rollout_func`` hook.

TRL's ``GRPOTrainer`` (tested with TRL 1.16) accepts ``rollout_func(prompts, trainer)``
in place of its own generation. :class:`SearchQARollout` is such a function: for every prompt it
plays one SearchQA-v0 episode with the trainer's current model (several turns: generate until
``</search>`` or ``</answer>``, step the env, append the ``<result>`` block, generate again) and
hands TRL back, per episode,

* ``prompt_ids`` / ``completion_ids``: the prompt, then everything after it — the ids the model
  sampled and the ids of the observations, in order, exactly as the rollout of
  :mod:`research_agents.grpo.rollout` builds them (sampled ids are never re-encoded);
* ``env_mask``: 1 on sampled ids, 0 on observation and forced-prefix ids; TRL multiplies it
  into its loss mask, so retrieved passages are never trained on;
* ``logprobs``: the sampling log-prob of each sampled id (0 on masked ids);
* ``env_reward`` and the episode's numbers (``env_searches``, ``env_em``, ``env_f1``,
  ``env_format_ok``, ``env_answered``): TRL passes extra fields to the reward functions.

:func:`searchqa_reward` is the reward function to give TRL: it returns ``env_reward``, the
env's own terminal reward (``em``, ``f1``, ``research``… whatever the env was configured
with), and logs the episode numbers as ``env/…`` metrics.

Usage::

    from trl import GRPOConfig, GRPOTrainer
    from research_agents.trl_interop import SearchQARollout, SearchQARolloutConfig, searchqa_reward

    rollout = SearchQARollout(tokenizer, SearchQARolloutConfig(split="train", reward="f1"))
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        args=GRPOConfig(output_dir="runs/trl", num_generations=4, max_completion_length=512),
        train_dataset=rollout.dataset(),
        reward_funcs=[searchqa_reward],
        rollout_func=rollout,
    )
    trainer.train()

What is and is not supported:

* Multi-turn episodes, with observations masked out of the loss: yes (``env_mask``).
* Generation uses the model being trained, on whatever device it is, with our batched
  sampler (:class:`~research_agents.generation.hf.HFGenerator`); it reads ``temperature``,
  ``top_p``, ``top_k``, ``max_completion_length`` (the budget for a whole episode's ids) and
  ``seed`` from the trainer's ``GRPOConfig``. TRL's vLLM path (``use_vllm``), ``min_p``,
  ``repetition_penalty`` and ``generation_kwargs`` are not used.
* Several processes (``accelerate launch``): each plays the episodes of its own slice of the
  batch, as TRL expects of a ``rollout_func``; not exercised by our tests (one CPU process).
* Episodes end at ``</answer>`` (or at an invalid action / the turn limit), not with an EOS
  token, so TRL's ``completions/clipped_ratio`` reads near 1 and ``mask_truncated_completions``
  must stay ``False`` (its default) or every episode would be masked.
* The prompt of each episode is SearchQA's own (the template, rendered with the tokenizer's
  chat template); build the dataset with :meth:`SearchQARollout.dataset` so the rollout can
  find the question of each prompt. Prompts written as plain questions, or conversational
  prompts whose last user message is the question, are looked up too.
* ``environment_factory`` / ``tools`` (TRL's JSON tool-calling loop): not used. SearchQA-v0's
  actions are text segments with ``<search>`` tags, which TRL's tool parser does not read,
  and the tool loop re-renders the chat template between turns where SearchQA appends the
  observation inside the same assistant turn.

The module is the TRL route and nothing else (its config, the ``rollout_func``, the episode it
records and the reward TRL reads); it stays one file just past ~400 lines because a third of it
is this account of what TRL's hook does and does not get.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from research_agents.generation.base import SamplingParams
from research_agents.grpo.rollout import Trajectory, rollout, rollout_seed
from research_env.env import SearchQAEnv
from research_env.records import EpisodeRecord
from research_env.settings import EnvSettings
from research_env.vector import SearchQAVectorEnv

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from research_agents.generation.hf import HFGenerator

__all__ = [
    "RolloutEpisode",
    "SearchQARollout",
    "SearchQARolloutConfig",
    "searchqa_reward",
]


@dataclass(frozen=True)
class SearchQARolloutConfig(EnvSettings):
    """The env and the per-turn generation settings of :class:`SearchQARollout`.

    The episode's rules are the :class:`~research_env.settings.EnvSettings` fields
    (``retriever``, ``top_k``, ``max_turns``, ``reward``, ``template``, ``invalid_action``,
    ``last_turn`` ...; ``None``: the protocol's). Sampling temperature, top-p/top-k, the seed and
    the episode token budget come from the trainer's ``GRPOConfig``; everything about the
    episode itself is here.
    """

    dataset: str | Sequence[Any] = "factbook"
    """``"factbook"``, a FlashRAG-style ``.jsonl`` path, or a list of ``QAExample``."""

    split: str = "train"
    """The split of the Factbook world to train on."""

    max_new_tokens: int = 64
    """Tokens generated per turn at most."""

    response_prefix: str = ""
    """Text forced at the start of an episode's first turn (e.g. ``"<think>"``); mask 0."""

    turn_prefix: str = ""
    """Text forced at the start of every later turn; mask 0."""

    final_prefix: str = ""
    """Text forced at the start of the last turn (e.g. ``"<answer>"``); mask 0."""

    max_response_tokens: int | None = None
    """Token budget of a whole episode after the prompt; ``None``: the trainer's
    ``max_completion_length`` (or 1024 if that is ``None`` too)."""

    history_size: int = 4096
    """How many played episodes :attr:`SearchQARollout.history` keeps."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: expected >= 1, got {self.max_new_tokens}")
        if self.max_response_tokens is not None and self.max_response_tokens < 1:
            raise ValueError(f"max_response_tokens: expected >= 1, got {self.max_response_tokens}")
        if self.history_size < 0:
            raise ValueError(f"history_size: expected >= 0, got {self.history_size}")

    def env_kwargs(self) -> dict[str, Any]:
        """The ``SearchQAEnv`` arguments (all but the tokenizer)."""
        return {"dataset": self.dataset, "split": self.split, **super().env_kwargs()}


@dataclass(kw_only=True)
class RolloutEpisode(EpisodeRecord):
    """One episode played for TRL: its :class:`EpisodeRecord` and the ids TRL trains on.

    ``actions`` are the action texts sent to the env at each turn (forced prefix included);
    ``reward`` is the env's terminal reward (0 when the token budget cut the episode short,
    whose ``end_reason`` is then ``token_budget``).
    """

    step: int
    """The trainer's ``global_step`` when it was played."""
    prompt: str
    """The prompt text TRL passed in."""
    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    """1 on sampled ids, 0 on observation and forced-prefix ids."""


class _RecordingVectorEnv(SearchQAVectorEnv):
    """A vector env that remembers the actions each sub-env was sent (for the history)."""

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        super().__init__(num_envs, **kwargs)
        self.actions: list[list[str]] = [[] for _ in range(num_envs)]

    def step_some(
        self, actions: Mapping[int, str]
    ) -> dict[int, tuple[dict[str, str], float, bool, bool, dict[str, Any]]]:
        for i, action in actions.items():
            self.actions[i].append(action)
        return super().step_some(actions)


class SearchQARollout:
    """A TRL ``rollout_func`` that plays SearchQA-v0 episodes with the trainer's model.

    Args:
        tokenizer: The policy's tokenizer (the trainer's ``processing_class``); its chat
            template formats the prompts and it tokenises prompts and observations.
        config: The env and per-turn generation settings.

    Attributes:
        env: A single env with the rollout's settings (its ``examples`` are the questions).
        history: The most recent episodes played, oldest first (``config.history_size``).
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, config: SearchQARolloutConfig | None = None
    ) -> None:
        self.config = config or SearchQARolloutConfig()
        self.tokenizer = tokenizer
        self.env = SearchQAEnv(tokenizer=tokenizer, **self.config.env_kwargs())
        self.history: deque[RolloutEpisode] = deque(maxlen=self.config.history_size)
        self._vec: _RecordingVectorEnv | None = None
        self._generator: HFGenerator | None = None
        self._by_prompt: dict[str, int] = {}
        self._by_question: dict[str, int] = {}
        for i, example in enumerate(self.env.examples):
            self._by_question.setdefault(example.question.strip(), i)

    # --------------------------------------------------------------------------------- data
    def prompt(self, index: int) -> str:
        """The prompt text of question ``index`` (what the env's ``reset`` returns)."""
        text = self.env.template.render(self.env.examples[index].question, self.tokenizer)
        self._by_prompt.setdefault(text, index)
        return text

    def dataset(
        self, indices: Sequence[int] | None = None, question_types: Sequence[str] | None = None
    ) -> Any:
        """A ``datasets.Dataset`` of prompts for ``GRPOTrainer(train_dataset=...)``.

        Args:
            indices: Question indices in the env's split (default: all).
            question_types: Keep only questions of these types (``metadata["type"]``).

        Returns:
            Columns ``prompt`` (the rendered prompt), ``question_index`` and ``question_id``.

        Raises:
            ValueError: If no question is left.
        """
        datasets = importlib.import_module("datasets")  # a TRL dependency; untyped
        chosen = list(range(len(self.env.examples))) if indices is None else list(indices)
        if question_types is not None:
            kinds = set(question_types)
            chosen = [i for i in chosen if self.env.examples[i].metadata.get("type") in kinds]
        if not chosen:
            raise ValueError(f"no question left (indices={indices!r}, types={question_types!r})")
        return datasets.Dataset.from_dict(
            {
                "prompt": [self.prompt(i) for i in chosen],
                "question_index": chosen,
                "question_id": [self.env.examples[i].id for i in chosen],
            }
        )

    def question_index(self, prompt: Any) -> int:
        """Find the question of a prompt TRL passes in.

        Args:
            prompt: A prompt from :meth:`dataset`, a bare question, or a conversational prompt
                (a list of ``{"role", "content"}`` messages) whose last user message is the
                question.

        Raises:
            ValueError: If no question of the env's split matches.
        """
        if isinstance(prompt, list):
            users = [
                m["content"]
                for m in prompt
                if isinstance(m, dict)
                and m.get("role") == "user"
                and isinstance(m.get("content"), str)
            ]
            text = users[-1] if users else ""
        else:
            text = prompt if isinstance(prompt, str) else ""
        if text not in self._by_prompt and len(self._by_prompt) < len(self.env.examples):
            for i in range(len(self.env.examples)):  # prompts rendered elsewhere: map them all once
                self.prompt(i)
        found = self._by_prompt.get(text, self._by_question.get(text.strip()))
        if found is None:
            raise ValueError(
                f"prompt {str(prompt)[:120]!r}… is not a question of the env's split "
                f"{self.env.split!r}; build train_dataset with SearchQARollout.dataset()"
            )
        return found

    # ------------------------------------------------------------------------------ rollout
    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt with ``trainer``'s model; return TRL's rollout dict.

        Args:
            prompts: The prompts of this process's slice of the batch (repeated
                ``num_generations`` times, as TRL sends them).
            trainer: The ``trl.GRPOTrainer``.

        Returns:
            ``prompt_ids``, ``completion_ids``, ``logprobs``, ``env_mask``, ``env_reward``,
            ``env_searches``, ``env_em``, ``env_f1``, ``env_format_ok`` and ``env_answered``,
            one entry per prompt.
        """
        indices = [self.question_index(p) for p in prompts]
        args = trainer.args
        budget = self.config.max_response_tokens or args.max_completion_length or 1024
        step = int(trainer.state.global_step)
        seed = rollout_seed(int(args.seed), step, int(trainer.accelerator.process_index))
        params = SamplingParams(
            max_new_tokens=self.config.max_new_tokens,
            temperature=float(args.temperature),
            top_p=float(args.top_p if args.top_p is not None else 1.0),
            top_k=int(args.top_k or 0),
            stop=self.env.stop_strings,
            seed=None,
        )
        vec = self._vector_env(len(indices))
        for acts in vec.actions:
            acts.clear()
        trajectories, _ = rollout(
            vec,
            self._policy(trainer),
            self.tokenizer,
            indices,
            params,
            response_prefix=self.config.response_prefix,
            turn_prefix=self.config.turn_prefix,
            final_prefix=self.config.final_prefix,
            max_response_tokens=budget,
            seed=seed,
        )
        episodes = [
            self._episode(step, prompt, index, traj, vec.actions[slot])
            for slot, (prompt, index, traj) in enumerate(zip(prompts, indices, trajectories))
        ]
        self.history.extend(episodes)
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [list(t.old_logprobs) for t in trajectories],
            "env_mask": [e.env_mask for e in episodes],
            "env_reward": [e.reward for e in episodes],
            "env_searches": [e.searches for e in episodes],
            "env_em": [e.em for e in episodes],
            "env_f1": [e.f1 for e in episodes],
            "env_format_ok": [float(e.format_ok) for e in episodes],
            "env_answered": [float(e.end_reason == "answer") for e in episodes],
        }

    def _vector_env(self, n: int) -> _RecordingVectorEnv:
        if self._vec is None or self._vec.num_envs < n:
            kwargs = self.config.env_kwargs()
            kwargs["retriever"] = self.env.retriever  # resolved once, shared
            self._vec = _RecordingVectorEnv(n, tokenizer=self.tokenizer, **kwargs)
        return self._vec

    def _policy(self, trainer: Any) -> HFGenerator:
        from research_agents.generation.hf import HFGenerator

        model = trainer.accelerator.unwrap_model(trainer.model)
        if self._generator is None or self._generator.model is not model:
            self._generator = HFGenerator(model, self.tokenizer)
        self._generator.sync_weights(model)  # same model: only drops KV caches of old weights
        return self._generator

    def _episode(
        self, step: int, prompt: Any, index: int, traj: Trajectory, actions: list[str]
    ) -> RolloutEpisode:
        record = traj.record(self.env.examples[index])
        record.actions = list(actions)
        return RolloutEpisode(
            **vars(record),
            step=step,
            prompt=prompt if isinstance(prompt, str) else str(prompt),
            prompt_ids=list(traj.prompt_ids),
            completion_ids=list(traj.response_ids),
            env_mask=list(traj.loss_mask),
        )


_METRICS = {
    "env_searches": "env/searches_per_episode",
    "env_em": "env/em",
    "env_f1": "env/f1",
    "env_format_ok": "env/format_ok",
    "env_answered": "env/answered",
}


def searchqa_reward(
    completions: list[Any], env_reward: list[float] | None = None, **kwargs: Any
) -> list[float]:
    """TRL reward function: each completion's SearchQA-v0 terminal reward.

    Give it to ``GRPOTrainer(reward_funcs=[searchqa_reward], rollout_func=SearchQARollout(...))``;
    the rollout passes ``env_reward`` (and the episode numbers it logs as ``env/…`` metrics
    through TRL's ``log_metric``).

    Args:
        completions: The completions (used only for their number).
        env_reward: The env's reward of each episode, from :class:`SearchQARollout`.
        **kwargs: Everything else TRL passes (``env_searches``, ``log_metric``, …).

    Returns:
        ``env_reward`` as floats.

    Raises:
        ValueError: If ``env_reward`` is missing (the trainer has no ``SearchQARollout``) or
            does not have one entry per completion.
    """
    if env_reward is None:
        raise ValueError(
            "searchqa_reward needs the env_reward column: pass rollout_func=SearchQARollout(...) "
            "to GRPOTrainer"
        )
    if len(env_reward) != len(completions):
        raise ValueError(f"got {len(env_reward)} env rewards for {len(completions)} completions")
    log_metric = kwargs.get("log_metric")
    if callable(log_metric):
        for column, name in _METRICS.items():
            values = kwargs.get(column)
            if values:
                log_metric(name, sum(float(v) for v in values) / len(values))
    return [float(r) for r in env_reward]
