r"""SearchQAChoiceEnv: SearchQA-v0 as a K-way decision problem that Stable-Baselines3 can learn.

SB3's algorithms cannot emit text. This wrapper keeps a real :class:`~research_env.env.SearchQAEnv`
inside and, at every step, asks a proposer for candidate actions (queries and answer spans);
the agent picks one with ``Discrete(K)`` and the wrapper sends it to the inner env as a text
action. The reward is the inner env's own reward (terminal EM by default), unchanged.

The module is longer than our ~400-line rule for one stated reason: it is one env, and some
fifty lines of it are :class:`SearchQAChoiceEnv`'s docstring, its env card (description, spaces,
reward, episode end, as Gymnasium envs document themselves). What the env draws on has its own
module: the candidates (:mod:`.proposers`, :mod:`.spans`), their features (:mod:`.features`)
and embeddings (:mod:`.embed`); what stays is its config and the reset / step / observe loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from research_agents.baselines.readers import ShownPassage, parse_result_block
from research_agents.sb3.embed import CachedEmbedder, TextEmbedder
from research_agents.sb3.features import CANDIDATE_FEATURES, ObsLayout, candidate_features
from research_agents.sb3.proposers import (
    Candidate,
    HeuristicProposer,
    ProposalState,
    Proposer,
)
from research_env.data.types import QAExample
from research_env.env import SearchQAEnv
from research_env.resolve import resolve_dataset
from research_env.retrieval.dense import MINILM_MODEL
from research_env.settings import EnvSettings

__all__ = ["FALLBACK_ANSWER", "ChoiceEnvConfig", "SearchQAChoiceEnv", "render_action"]

FALLBACK_ANSWER = "unknown"
"""The answer offered when a proposer offers nothing usable (e.g. no search, last turn)."""

Obs = npt.NDArray[np.float32]
_IS_PAD = CANDIDATE_FEATURES.index("is_pad")


@dataclass(frozen=True)
class ChoiceEnvConfig(EnvSettings):
    """Settings of :class:`SearchQAChoiceEnv`: the inner env's rules and the choice problem's.

    The inner env's rules are the :class:`~research_env.settings.EnvSettings` fields
    (``retriever``, ``top_k``, ``max_turns``, ``reward``, ``template`` ...; ``None``: the
    protocol's, for ``ours`` BM25 top-5, 4 turns, EM). The last turn only offers answers, and
    the inner env's reward is passed through unchanged.
    """

    dataset: str | Path | Sequence[QAExample] = "factbook"
    """The questions: ``"factbook"``, a FlashRAG ``.jsonl`` or a list of ``QAExample``."""

    split: str = "train"
    """Factbook split: ``"train"``, ``"dev"`` or ``"test"``."""

    question_types: tuple[str, ...] | None = None
    """Keep only questions whose ``metadata["type"]`` is one of these (``None``: all)."""

    num_candidates: int = 16
    """``K``: candidate slots, the size of the ``Discrete`` action space. When a proposer offers
    more, searches and answers are taken alternately in the proposer's order."""

    search_cost: float = 0.0
    """Subtracted from the reward for every search the agent chooses (default: none)."""

    shuffle: bool = True
    """Shuffle the candidates into the slots with the env's seeded RNG, so a slot's position
    says nothing about the proposer's preference."""

    encoder_model: str = MINILM_MODEL
    """The sentence-transformers model of the embeddings (offline MiniLM by default)."""

    embed_cache_size: int = 65536
    """Texts kept in the embedding LRU cache."""

    extra_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Other keyword arguments for the inner ``SearchQAEnv``."""

    def __post_init__(self) -> None:
        if isinstance(self.num_candidates, bool) or self.num_candidates < 2:
            raise ValueError(
                f"ChoiceEnvConfig.num_candidates: expected >= 2, got {self.num_candidates!r}"
            )
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"ChoiceEnvConfig.max_turns: expected >= 1, got {self.max_turns!r}")
        if self.search_cost < 0:
            raise ValueError(
                f"ChoiceEnvConfig.search_cost: expected >= 0, got {self.search_cost!r}"
            )
        if self.question_types is not None and not self.question_types:
            raise ValueError("ChoiceEnvConfig.question_types: expected None or a non-empty tuple")


_UNSAFE = re.compile(r"[<>{}]")
_TITLE_SEP = " — "


def _segments(title: str) -> list[str]:
    """A passage title's segments (``"Peru — Government — Capital"``: three)."""
    return [s for s in (part.strip() for part in title.split(_TITLE_SEP)) if s]


def _unit(v: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float32)


def _safe(text: str) -> str:
    return " ".join(_UNSAFE.sub(" ", text).split()) or FALLBACK_ANSWER


def render_action(candidate: Candidate, boxed: bool = True) -> str:
    r"""The text action a candidate becomes in the inner env.

    Args:
        candidate: The chosen candidate.
        boxed: Whether answers go in ``\boxed{}`` (the template's ``boxed_answer``).

    Returns:
        ``<think>…</think><search>query</search>`` or ``<think>…</think><answer>…</answer>``.

    >>> render_action(Candidate("search", "Peru capital"))
    '<think>I will search for Peru capital.</think><search>Peru capital</search>'
    >>> render_action(Candidate("answer", "Lima"))
    '<think>The answer is Lima.</think><answer>\\boxed{Lima}</answer>'
    """
    text = _safe(candidate.text)
    if candidate.kind == "search":
        return f"<think>I will search for {text}.</think><search>{text}</search>"
    answer = f"\\boxed{{{text}}}" if boxed else text
    return f"<think>The answer is {text}.</think><answer>{answer}</answer>"


class SearchQAChoiceEnv(gym.Env[Obs, np.int64]):
    r"""Answer a SearchQA-v0 question by choosing, each turn, one of K proposed actions.

    ## Description
    A wrapper around a real :class:`~research_env.env.SearchQAEnv` (Factbook world and BM25 by
    default). Each turn a proposer (:class:`~research_agents.sb3.proposers.HeuristicProposer`
    by default, or a language model through
    :class:`~research_agents.sb3.proposers.LLMProposer`) offers up to K candidates: searches
    (the question itself, or an entity from the question or from retrieved passage titles plus a
    relation phrase of the question) and answers (spans of retrieved passages, including those
    of other passages and earlier searches as distractors, and the question's own names). The
    agent picks one; the wrapper sends it as ``<search>q</search>`` or
    ``<answer>\boxed{a}</answer>`` to the inner env, which retrieves and scores as usual.
    Nothing golden reaches the proposer or the features.

    ## Action Space
    ``Discrete(K)``: the slot of the chosen candidate. Slots past the real candidates are
    padding: slot ``k`` then aliases real candidate ``k mod n`` (its observation is a copy with
    ``is_pad = 1``), so every action is a real one and nothing needs masking; ``action_masks()``
    and ``info["action_mask"]`` still say which slots are real (for sb3-contrib's MaskablePPO
    or a fair random baseline).

    ## Observation Space
    ``Box(-1, 1, (2 D + G + K (D + S),), float32)``: the MiniLM embedding of the question, a
    context embedding (the normalised mean of the embeddings of the queries issued and of the
    top 3 titles last shown; zero before the first search), the global features, and for each
    slot the candidate's embedding and its features; see :mod:`research_agents.sb3.features`.
    A title's embedding is the normalised mean of its segments' (``Peru``, ``Government``,
    ``Capital``), so few distinct texts are embedded. After the episode ends the slots are zero.

    ## Starting State
    ``reset(seed=s)`` seeds the env's RNG, which seeds the inner env's question draw and the
    candidate shuffles; ``options={"index": i}`` / ``{"question_id": q}`` pick the question.

    ## Rewards
    The inner env's reward: 0 after a search, EM (or the configured preset) on the answer;
    minus ``search_cost`` per search (default 0).

    ## Episode End
    Terminated on an answer. On the inner env's last turn only answers are offered, so an
    episode always ends with one within ``max_turns`` steps.

    ## Information
    The inner env's ``info`` plus ``candidates`` (the real candidates' texts, slot order),
    ``candidate_kinds``, ``action_mask``; after a step also ``chosen`` (the candidate),
    ``chosen_slot``, ``padded_choice`` (whether a padding slot was chosen) and
    ``action_text`` (what the inner env received).

    ## Arguments
    ``SearchQAChoiceEnv(config=ChoiceEnvConfig(...), proposer=None, embedder=None)``; share one
    ``embedder`` (a :class:`~research_agents.sb3.embed.CachedEmbedder`) between envs to share its
    cache.
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 (Gymnasium API)

    def __init__(
        self,
        config: ChoiceEnvConfig | None = None,
        proposer: Proposer | None = None,
        embedder: TextEmbedder | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = cfg = (config or ChoiceEnvConfig()).resolved()
        assert cfg.max_turns is not None  # resolved
        self.max_turns: int = cfg.max_turns
        examples = resolve_dataset(cfg.dataset, cfg.split)
        if cfg.question_types is not None:
            known = {e.metadata.get("type") for e in examples}
            unknown = sorted(set(cfg.question_types) - known)
            if unknown:
                raise ValueError(
                    f"ChoiceEnvConfig.question_types: no {cfg.split!r} question has type "
                    f"{unknown}; known types: {sorted(str(k) for k in known)}"
                )
            examples = [e for e in examples if e.metadata.get("type") in cfg.question_types]
        self.inner = SearchQAEnv(
            dataset=examples,
            split=cfg.split,
            render_mode=render_mode,
            **(cfg.env_kwargs() | cfg.extra_env_kwargs),
        )
        self.render_mode = render_mode
        self.proposer: Proposer = proposer if proposer is not None else HeuristicProposer()
        self.embedder: TextEmbedder = (
            embedder
            if embedder is not None
            else CachedEmbedder(model=cfg.encoder_model, cache_size=cfg.embed_cache_size)
        )
        self.layout = ObsLayout(cfg.num_candidates, self.embedder.dim)
        self.action_space = spaces.Discrete(cfg.num_candidates)
        self.observation_space = spaces.Box(-1.0, 1.0, (self.layout.size,), np.float32)
        self._boxed = self.inner.template.boxed_answer
        self._question = ""
        self._q_vec = np.zeros(self.layout.embed_dim, dtype=np.float32)
        self._queries: list[str] = []
        self._results: list[tuple[ShownPassage, ...]] = []
        self._turn = 0
        self._done = True
        self._started = False
        self.candidates: list[Candidate] = []
        """The real candidates of the current step, in slot order."""

    @property
    def examples(self) -> list[QAExample]:
        """The questions episodes are drawn from."""
        return self.inner.examples

    # ------------------------------------------------------------------ reset / step
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start an episode (see the class docstring) and propose the first candidates."""
        return self.observe(self.start(seed=seed, options=options))

    def step(self, action: int | np.integer[Any]) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Send the chosen candidate to the inner env as text; return its reward.

        Raises:
            RuntimeError: Before ``reset()`` or after the episode ended.
            ValueError: If ``action`` is not an integer in ``[0, K)``.
        """
        reward, terminated, truncated, info = self.advance(action)
        obs, info = self.observe(info)
        return obs, reward, terminated, truncated, info

    # ``reset`` and ``step`` in two halves, so that a vector env can embed the texts of all its
    # sub-envs in one encoder call in between (see research_agents.sb3.vec).
    def start(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """First half of :meth:`reset`: start the inner episode, propose; return its info."""
        super().reset(seed=seed)
        inner_seed = int(self.np_random.integers(2**31 - 1))
        obs, info = self.inner.reset(seed=inner_seed, options=options)
        self._question = obs["question"]
        self._queries, self._results = [], []
        self._turn, self._done, self._started = 0, False, True
        self.candidates = self._propose()
        return info

    def advance(self, action: int | np.integer[Any]) -> tuple[float, bool, bool, dict[str, Any]]:
        """First half of :meth:`step`: act in the inner env, propose what comes next.

        Returns:
            ``(reward, terminated, truncated, info)``; :meth:`observe` then gives the observation.
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode is over; call reset() before step()")
        slot = self._slot(action)
        offered = len(self.candidates)
        chosen = self.candidates[slot % offered]
        text = render_action(chosen, boxed=self._boxed)
        obs, reward, terminated, truncated, info = self.inner.step(text)
        self._turn += 1
        if info["action_type"] == "search":
            self._queries.append(str(info["query"]))
            self._results.append(tuple(parse_result_block(obs["observation"])))
            reward -= self.config.search_cost
        self._done = bool(terminated or truncated)
        self.candidates = [] if self._done else self._propose()
        info.update(
            chosen=chosen,
            chosen_slot=slot,
            padded_choice=slot >= offered,
            action_text=text,
        )
        return float(reward), bool(terminated), bool(truncated), info

    def _slot(self, action: int | np.integer[Any]) -> int:
        if isinstance(action, np.ndarray) and action.shape in ((), (1,)):
            action = action.reshape(()).item()
        if isinstance(action, bool) or not isinstance(action, int | np.integer):
            raise ValueError(
                f"action: expected an int in [0, {self.config.num_candidates}), got {action!r}"
            )
        slot = int(action)
        if not 0 <= slot < self.config.num_candidates:
            raise ValueError(
                f"action: expected an int in [0, {self.config.num_candidates}), got {slot}"
            )
        return slot

    # ------------------------------------------------------------------ candidates
    def _state(self) -> ProposalState:
        ep = self.inner.episode
        return ProposalState(
            question=self._question,
            prompt=ep.prompt if ep else "",
            transcript=ep.response if ep else "",
            queries=tuple(self._queries),
            results=tuple(self._results),
            turn=self._turn,
            max_turns=self.max_turns,
        )

    def _propose(self) -> list[Candidate]:
        state = self._state()
        keep: list[Candidate] = []
        seen: set[tuple[str, str]] = set()
        for c in self.proposer.propose(state):
            key = (c.kind, c.text.lower())
            if (state.last_turn and c.kind == "search") or key in seen:
                continue
            seen.add(key)
            keep.append(c)
        if not any(c.kind == "answer" for c in keep):  # always leave a way to end
            keep.append(Candidate("answer", FALLBACK_ANSWER, origin="fallback"))
        if len(keep) > self.config.num_candidates:  # keep both kinds: alternate, in order
            searches = [c for c in keep if c.kind == "search"]
            answers = [c for c in keep if c.kind == "answer"]
            keep = [c for pair in zip_longest(searches, answers) for c in pair if c is not None]
            keep = keep[: self.config.num_candidates]
        if self.config.shuffle:
            keep = [keep[i] for i in self.np_random.permutation(len(keep))]
        return keep

    def pending_texts(self) -> list[str]:
        """The texts :meth:`observe` will embed for the current state.

        The question, the candidates, the queries issued and the segments of the titles the
        features use; a vector env embeds those of all its sub-envs in one call beforehand.
        """
        return [self._question, *self._embedding_texts()[0]]

    def _embedding_texts(self) -> tuple[list[str], list[str], list[str]]:
        shown = [p.title for p in self._results[-1][:3]] if self._results else []
        titles = [c.source_title for c in self.candidates if c.source_title] + shown
        segments = sorted({seg for t in titles for seg in _segments(t)})
        texts = [c.text for c in self.candidates] + self._queries + segments
        return texts, segments, shown

    def observe(self, info: dict[str, Any]) -> tuple[Obs, dict[str, Any]]:
        """Second half of :meth:`reset` / :meth:`step`: embed and build the observation.

        Args:
            info: The info of :meth:`start` or :meth:`advance`; the candidates are added.

        Returns:
            ``(observation, info)``.
        """
        layout = self.layout
        vector = np.zeros(layout.size, dtype=np.float32)
        d = layout.embed_dim
        n, n_queries = len(self.candidates), len(self._queries)
        # One embedding call per step: the question, the candidates, and the pieces the
        # context and the source titles are composed of (queries, title segments).
        texts, segments, shown = self._embedding_texts()
        vecs = self.embedder.embed([self._question, *texts])
        self._q_vec, vecs = vecs[0], vecs[1:]
        c_vecs, q_vecs = vecs[:n], vecs[n : n + n_queries]
        seg_vec = dict(zip(segments, vecs[n + n_queries :]))
        t_vec = {
            t: _unit(np.mean([seg_vec[s] for s in _segments(t)] or [np.zeros(d)], axis=0))
            for t in {c.source_title for c in self.candidates if c.source_title} | set(shown)
        }
        parts = [*q_vecs, *(t_vec[t] for t in shown)]
        ctx_vec = _unit(np.mean(parts, axis=0)) if parts else np.zeros(d, dtype=np.float32)
        vector[:d] = self._q_vec
        vector[d : 2 * d] = ctx_vec
        max_turns = self.max_turns
        vector[2 * d : layout.head_size] = (
            self._turn / max_turns,
            len(self._queries) / max_turns,
            float(not self._done and self._turn >= max_turns - 1),
            n / layout.num_candidates,
        )
        slots = []
        for i, c in enumerate(self.candidates):
            feats = candidate_features(
                c,
                question=self._question,
                cos_question=float(c_vecs[i] @ self._q_vec),
                cos_context=float(c_vecs[i] @ ctx_vec),
                cos_question_source=(
                    float(t_vec[c.source_title] @ self._q_vec) if c.source_title else 0.0
                ),
            )
            slots.append(np.concatenate([c_vecs[i], feats]))
        for k in range(n if n == 0 else layout.num_candidates):
            start = layout.head_size + k * layout.slot_size
            slot = slots[k % n].copy()
            if k >= n:
                slot[d + _IS_PAD] = 1.0
            vector[start : start + layout.slot_size] = slot
        np.clip(vector, -1.0, 1.0, out=vector)
        info = dict(info)
        info["candidates"] = [c.text for c in self.candidates]
        info["candidate_kinds"] = [c.kind for c in self.candidates]
        info["action_mask"] = self.action_masks()
        return vector, info

    def action_masks(self) -> npt.NDArray[np.bool_]:
        """Which slots hold real candidates (the rest alias them); sb3-contrib's convention."""
        mask = np.zeros(self.config.num_candidates, dtype=bool)
        mask[: len(self.candidates)] = True
        return mask

    # ------------------------------------------------------------------ misc
    def render(self) -> str | None:
        """The inner env's transcript, when ``render_mode="ansi"``."""
        return self.inner.render()

    def close(self) -> None:
        """Close the inner env."""
        self.inner.close()
