"""Token-in-token-out rollouts through SearchQA-v0.

For every episode the rollout keeps one list of token ids: the prompt (loss mask 0), then in turn
the ids the policy sampled (mask 1, with their log-probs) and the ids of each observation the env
returned (mask 0), each observation tokenised exactly once. The text sent to the env is decoded
from the sampled ids, but those ids are never re-encoded: what the trainer scores is exactly what
the generator produced.

All episodes of a batch advance together: each turn, one ``generate`` call for every episode still
running, then one batched env step (one ``search_batch`` call) for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from research_agents.generation.base import Generator, SamplingParams
from research_agents.grpo.turns import TurnStepper
from research_env.records import EpisodeRecord, episode_record
from research_env.settings import TurnSettings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from research_env.data.types import QAExample
    from research_env.vector import SearchQAVectorEnv


def rollout_seed(seed: int, step: int, rank: int = 0) -> int:
    """The sampler seed of one step's rollouts: distinct per step and per rank.

    The one seed scheme of every route that samples rollouts (the GRPO trainer and TRL's
    ``rollout_func``); rank 0 gets the single-process seed, so a one-process run and rank 0 of
    a distributed one sample alike.

    >>> rollout_seed(0, 2), rollout_seed(0, 2, rank=1) - rollout_seed(0, 2)
    (2000, 1099511627776)
    """
    return seed * 1_000_003 + step * 1_000 + rank * 2**40


@dataclass
class Trajectory:
    """One episode as token ids, ready for the GRPO loss."""

    prompt_ids: list[int]
    """The prompt's ids (never trained on)."""

    response_ids: list[int] = field(default_factory=list)
    """Everything after the prompt: forced prefix, sampled ids and observation ids, in order."""

    loss_mask: list[int] = field(default_factory=list)
    """1 for ids the policy sampled, 0 for the response prefix and observations."""

    old_logprobs: list[float] = field(default_factory=list)
    """Sampling log-prob of each response id (0.0 where ``loss_mask`` is 0)."""

    reward: float = 0.0
    """The env's terminal reward (0 when the episode was cut short)."""

    group_id: int = 0
    """Index of the question within the batch; the G rollouts of a question share it."""

    question_index: int = 0
    """Index of the question in the env's split."""

    truncated: bool = False
    """Ended by the turn limit or the token budget rather than an answer or invalid action."""

    retrieval_failed: bool = False
    """A search in this episode hit a retrieval error."""

    info: dict[str, Any] = field(default_factory=dict)
    """The env's last info (reward components, end reason, searches, ...)."""

    turns: int = 0
    """Actions taken."""

    @property
    def num_generated(self) -> int:
        """How many ids the policy sampled."""
        return sum(self.loss_mask)

    @property
    def ids(self) -> list[int]:
        """Prompt then response ids: the sequence the trainer scores."""
        return self.prompt_ids + self.response_ids

    def record(self, example: QAExample | None = None) -> EpisodeRecord:
        """This episode's :class:`~research_env.records.EpisodeRecord`, read from its ``info``.

        A rollout the token budget cut short never reached the env's last step, so its golden
        answers come from ``example`` and its end reason is ``token_budget``. Without
        ``example`` (batch statistics need no question text) the id, type and text stay empty.
        """
        start: dict[str, Any] = {"index": self.question_index}
        if example is not None:
            start |= {"question_id": example.id, "question_type": example.metadata.get("type")}
        return episode_record(
            start,
            self.info,
            question="" if example is None else example.question,
            reward=self.reward,
            turns=self.turns,
            stats={"generated_tokens": float(self.num_generated)},
            golden_answers=None if example is None else example.golden_answers,
            end_reason=self.info.get("end_reason", "token_budget" if self.truncated else None),
        )


@dataclass
class RolloutStats:
    """Timing of one batch of rollouts."""

    wall_s: float = 0.0
    """Total wall time."""

    generate_s: float = 0.0
    """Time inside the generator."""

    env_s: float = 0.0
    """Time inside the env (parsing, retrieval, scoring, observation formatting)."""

    tokenize_s: float = 0.0
    """Time tokenising prompts and observations."""

    generated_tokens: int = 0
    """Ids sampled in total."""

    generate_calls: int = 0
    """Calls to the generator (one per turn)."""

    rounds: int = 1
    """Rounds of rollouts the step played (more than one under dynamic sampling)."""

    replaced_groups: int = 0
    """Groups whose rewards were all equal, replaced by a later round's groups."""

    def add(self, other: RolloutStats) -> None:
        """Count ``other`` (a later round of the same step) into these totals."""
        self.wall_s += other.wall_s
        self.generate_s += other.generate_s
        self.env_s += other.env_s
        self.tokenize_s += other.tokenize_s
        self.generated_tokens += other.generated_tokens
        self.generate_calls += other.generate_calls


def rollout(
    vec: SearchQAVectorEnv,
    generator: Generator,
    tokenizer: PreTrainedTokenizerBase,
    question_indices: Sequence[int],
    params: SamplingParams,
    *,
    group_ids: Sequence[int] | None = None,
    response_prefix: str = "",
    turn_prefix: str = "",
    final_prefix: str = "",
    answer_continuation: str = "",
    max_response_tokens: int = 1024,
    seed: int | None = None,
) -> tuple[list[Trajectory], RolloutStats]:
    """Play one episode per entry of ``question_indices``, all turns batched.

    Args:
        vec: The vector env; it needs at least ``len(question_indices)`` sub-envs.
        generator: Samples the policy's turns.
        tokenizer: The policy's tokenizer (prompts and observations are encoded with it).
        question_indices: The question of each episode (repeat an index G times for a group).
        params: Sampling parameters; ``max_new_tokens`` is the per-turn budget and ``stop``
            should hold the env template's stop strings.
        group_ids: The group of each episode (default: its position).
        response_prefix: Text forced at the start of the first turn (e.g. ``"<think>"``); it
            is part of the action text and of the ids, with loss mask 0.
        turn_prefix: Text forced at the start of every later turn (default none).
        final_prefix: Text forced at the start of the last turn an env allows (e.g.
            ``"<answer>"`` with ``last_turn="answer_only"``); overrides ``turn_prefix`` there.
        answer_continuation: Text forced right after the policy itself writes ``<answer>`` (e.g.
            a boxed-answer opening); the rest of that turn is sampled in the next ``generate`` call.
        max_response_tokens: Budget for all response ids of an episode (sampled and observed);
            an episode that runs out is cut short as truncated, with reward 0.
        seed: Seeds the sampler for this batch (``None``: continue its stream).

    Returns:
        The trajectories, in the order of ``question_indices``, and timing statistics.
    """
    n = len(question_indices)
    if n > vec.num_envs:
        raise ValueError(f"{n} episodes need as many sub-envs, the vector env has {vec.num_envs}")
    groups = list(group_ids) if group_ids is not None else list(range(n))
    stats = RolloutStats()
    start = time.perf_counter()

    trajs: list[Trajectory] = []
    t0 = time.perf_counter()
    for i, q in enumerate(question_indices):
        obs, _ = vec.envs[i].reset(options={"index": int(q)})
        trajs.append(Trajectory(prompt_ids=[], group_id=groups[i], question_index=int(q)))
        trajs[i].info["prompt_text"] = obs["prompt"]
    stats.env_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in trajs:
        t.prompt_ids = tokenizer.encode(t.info.pop("prompt_text"), add_special_tokens=False)
    stats.tokenize_s += time.perf_counter() - t0
    stepper = TurnStepper(
        tokenizer,
        TurnSettings(
            max_new_tokens=params.max_new_tokens,
            max_response_tokens=max_response_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            response_prefix=response_prefix,
            turn_prefix=turn_prefix,
            final_prefix=final_prefix,
            answer_continuation=answer_continuation,
        ),
        params.stop,
    )

    active = list(range(n))
    max_turns = [vec.envs[i].max_turns for i in range(n)]
    eos_suffix = [vec.envs[i].eos_suffix for i in range(n)]
    # A turn the policy opened as an answer, with answer_continuation forced after the tag,
    # goes on in the next round's generate call (its text so far here); it takes no env step.
    continuing: dict[int, str] = {}
    while active:
        prefixes: dict[int, str] = {}
        budgets: dict[int, int] = {}
        for i in active:
            if i in continuing:
                prefixes[i] = continuing.pop(i)
                budgets[i] = stepper.budget(trajs[i])
            else:
                prefixes[i], budgets[i] = stepper.open(trajs[i], max_turns[i])
        for i in active:
            if budgets[i] <= 0:
                trajs[i].truncated = True
                trajs[i].info.setdefault("end_reason", "token_budget")
        active = [i for i in active if budgets[i] > 0]
        if not active:
            break
        # One generate call per turn; rows with less budget get a smaller cap below.
        turn_params = stepper.sampling(
            (budgets[i] for i in active), seed, stats.generate_calls, top_k=params.top_k
        )
        t0 = time.perf_counter()
        gens = generator.generate([trajs[i].ids for i in active], turn_params)
        stats.generate_s += time.perf_counter() - t0
        stats.generate_calls += 1

        actions: dict[int, str] = {}
        for i, gen in zip(active, gens):
            sampled = trajs[i].num_generated
            text = stepper.open_answer(trajs[i], prefixes[i], gen, budgets[i])
            if text is not None:
                continuing[i] = text
            else:
                actions[i] = stepper.take(trajs[i], prefixes[i], gen, budgets[i], eos_suffix[i])
            stats.generated_tokens += trajs[i].num_generated - sampled  # what was kept

        t0 = time.perf_counter()
        results = vec.step_some(actions) if actions else {}
        stats.env_s += time.perf_counter() - t0

        still: list[int] = []
        t0 = time.perf_counter()
        for i in active:
            if i in continuing:
                still.append(i)
                continue
            obs, reward, terminated, truncated, info = results[i]
            traj = trajs[i]
            traj.info = info
            if terminated or truncated:
                traj.reward = float(reward)
                traj.truncated = bool(truncated)
                traj.retrieval_failed = bool(info.get("retrieval_failed", False))
                continue
            stepper.observe(traj, obs["observation"])
            if info.get("retrieval_error"):
                traj.retrieval_failed = True
            still.append(i)
        stats.tokenize_s += time.perf_counter() - t0
        active = still

    # Trim an observation that overflowed the budget so every trajectory fits it.
    for traj in trajs:
        if len(traj.response_ids) > max_response_tokens:
            del traj.response_ids[max_response_tokens:]
            del traj.loss_mask[max_response_tokens:]
            del traj.old_logprobs[max_response_tokens:]
    stats.wall_s = time.perf_counter() - start
    return trajs, stats
