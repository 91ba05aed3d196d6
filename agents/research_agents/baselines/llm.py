r"""LLM baselines of the leaderboard, all on the same generator, retriever and env.

:func:`make_agent` builds one of :data:`AGENT_KINDS`, each an :class:`~research_env.agent.Agent`
that :func:`research_env.agent.play` drives over a :class:`~research_env.env.SearchQAEnv` or a
:class:`~research_env.vector.SearchQAVectorEnv`:

``direct``
    No retrieval: one generation from the question alone (a short-answer chat prompt), emitted
    as the answer. 0 searches.
``naive-rag``
    Search with the question once, then one generation from the question and the passages.
    1 search.
``iter-retgen``
    Iter-RetGen (Shao et al., 2023): search with the question; then, ``iterations`` times,
    generate from the question and the latest passages, and, until the last round, search with
    ``question + generation``. The last generation is the answer. ``iterations`` searches.
``research``
    Zero-shot ReSearch prompting at the token level (:mod:`.policy_agent`): the model plays the
    env's own ReSearch prompt and decides when to search and answer. With a GRPO checkpoint and
    the trainer's settings (:meth:`LLMAgentConfig.from_grpo`) it reproduces
    ``GRPOTrainer.evaluate``.
``oracle``
    A retrieval-oracle upper bound (below). 1 search, more when the first misses.

**Retrieval goes through the env.** Every agent searches by emitting ``<search>query</search>``
and reads the env's ``<result>`` observation, so all rows share the retriever, ``top_k``, the
passage formatting (``max_doc_words`` included) and the env's search count. The prompt-based
agents put the passages into their prompt exactly as the env formatted them (the
``Doc i (Title: ...) text`` lines, without the result tags).

**The oracle** knows the golden answers: at ``begin`` it reads
``env.examples[info["index"]].golden_answers``. It searches through the env with
``"{question} {golden answer}"``, then with the golden answer alone (then the same with the next
alias: the question's words can outweigh the answer's in BM25) until the shown
passages contain a golden answer (``sub_em`` over the shown text, as the env's
``answer_in_retrieval``) or its search budget is spent
(``min(oracle_max_searches, max_turns - 1)``). The same short-answer reader as ``naive-rag``
then answers from the passages of its last search. It is an upper bound on *retrieval* (the
reader sees passages that contain the answer, chosen with knowledge of it, plus the rest of that
top-k), not on reading: the model must still pick the answer out, and it answers in its own
words. Its ``episode_stats`` report ``oracle_hit`` (whether a gold-bearing result was found).

**Actions and scoring.** The prompt-based agents write their own tags around the model's text:
a search is ``<search>query</search>`` (after ``<think>generation</think>`` in Iter-RetGen's
later rounds), and the answer is ``<think>generation</think>`` then
``<answer>\boxed{answer}</answer>`` (no ``\boxed{}`` for templates without it), where
``generation`` is the model's text on one line and ``answer`` its first non-empty line,
stripped (:mod:`.llm_prompts`). Tag-like text, braces and backslashes are removed from generated
text before it goes into a tag; an empty answer becomes ``config.empty_answer``. Their format is
therefore valid by construction: compare ``format_ok`` across ``research`` agents only.

**Batching and determinism.** Every round, one ``Generator.generate`` call serves all slots that
need a generation. Greedy decoding (``temperature=0``, the default) gives the same records on a
single env and on a vector env; with sampling each call is seeded with ``seed + calls so far``.
Every agent reports ``episode_stats(slot) = {"generated_tokens": n, ...}``.

The module is a little over our ~400-line rule for one stated reason: a seventh of it is this
docstring, the leaderboard's account of what each baseline does and how it is scored. The code
is one job, the prompt-based agents (their config, :class:`PromptAgent`, :func:`make_agent`);
their prompts are in :mod:`.llm_prompts` and the token-level ``research`` agent in
:mod:`.policy_agent`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from research_agents.baselines.llm_prompts import (
    direct_messages,
    inline,
    rag_messages,
    render_chat,
    short_answer,
)
from research_agents.baselines.policy_agent import ResearchPolicyAgent
from research_agents.generation.base import Generator, SamplingParams
from research_env.agent import Agent, Observation
from research_env.env import SearchQAEnv
from research_env.rewards import sub_em
from research_env.settings import TurnSettings, settings_from
from research_env.vector import SearchQAVectorEnv

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "AGENT_KINDS",
    "LLMAgentConfig",
    "PromptAgent",
    "make_agent",
]

AGENT_KINDS: tuple[str, ...] = ("direct", "naive-rag", "iter-retgen", "research", "oracle")
"""The kinds :func:`make_agent` builds."""


@dataclass(frozen=True)
class LLMAgentConfig(TurnSettings):
    """Settings of the LLM baselines: the turn settings every kind shares, and each kind's own.

    The turn fields (:class:`~research_env.settings.TurnSettings`: ``max_new_tokens``,
    ``max_response_tokens``, ``temperature``, ``top_p`` and the three prefixes) are the
    per-turn budget and sampling of ``research`` and the answer length and sampling of the
    others; the prefixes and ``max_response_tokens`` are ``research``'s only. The evaluation
    suites pass their own (:meth:`from_turn_settings`); :meth:`from_grpo` copies a GRPO run's.
    """

    seed: int = 0
    """Seed of the first generate call; call ``n`` is seeded with ``seed + n``."""

    iterations: int = 2
    """``iter-retgen`` only: retrieval-generation rounds (= searches); the env needs
    ``max_turns >= iterations + 1``."""

    oracle_max_searches: int = 2
    """``oracle`` only: most searches before it answers (also capped by ``max_turns - 1``)."""

    empty_answer: str = "unknown"
    """Prompt-based kinds: the answer emitted when the generation has no non-empty line (an
    empty ``<answer>`` would be an invalid action)."""

    name: str | None = None
    """The agent's name in result tables (``None``: the kind)."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes kept with results (not read by the agents)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        checks: list[tuple[bool, str]] = [
            (self.iterations >= 1, f"iterations: expected >= 1, got {self.iterations}"),
            (
                self.oracle_max_searches >= 1,
                f"oracle_max_searches: expected >= 1, got {self.oracle_max_searches}",
            ),
            (
                bool(inline(self.empty_answer)),
                f"empty_answer: expected a non-empty answer, got {self.empty_answer!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"LLMAgentConfig.{message}")

    @classmethod
    def from_turn_settings(cls, turns: TurnSettings, **overrides: Any) -> LLMAgentConfig:
        """The config that plays with ``turns`` (a suite's or a checkpoint's), plus ``overrides``.

        Raises:
            ValueError: If an override names no field.
        """
        return cls._checked(settings_from(TurnSettings, turns).__dict__, overrides)

    @classmethod
    def _checked(cls, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> LLMAgentConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown LLMAgentConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**(dict(base) | dict(overrides)))

    @classmethod
    def from_grpo(cls, grpo: Any, **overrides: Any) -> LLMAgentConfig:
        """The settings :meth:`GRPOTrainer.evaluate` uses for a GRPO config (greedy decoding).

        Args:
            grpo: A :class:`~research_agents.grpo.config.GRPOConfig` (or anything with the
                :class:`~research_env.settings.TurnSettings` fields and ``seed``).
            **overrides: Fields to set on top.

        Returns:
            The config.

        Raises:
            ValueError: If an override names no field.
        """
        turns = settings_from(TurnSettings, grpo, temperature=0.0)
        return cls._checked(turns.__dict__ | {"seed": grpo.seed}, overrides)


# --------------------------------------------------------------------------- prompt-based agents
@dataclass
class _Generate:
    """A slot's request for one generation this round, and what to do with its text."""

    prompt: str
    finish: Callable[[str], str]


@dataclass
class _Episode:
    question: str
    golden_answers: list[str]
    turns: int = 0
    generated_tokens: int = 0
    queries: list[str] = field(default_factory=list)
    oracle_hit: bool = False


class PromptAgent:
    """A prompt-based LLM baseline: ``direct``, ``naive-rag``, ``iter-retgen`` or ``oracle``.

    Build it with :func:`make_agent`. See the module docstring for what each kind does.

    Args:
        kind: One of the prompt-based kinds.
        generator: Samples the generations.
        tokenizer: The model's tokenizer (its chat template renders the prompts).
        env: The env the agent plays (template, ``max_turns`` and, for the oracle, the split's
            examples).
        config: Settings.

    Raises:
        ValueError: If ``kind`` is not one of the prompt-based kinds.
    """

    def __init__(
        self,
        kind: str,
        generator: Generator,
        tokenizer: PreTrainedTokenizerBase,
        env: SearchQAEnv,
        config: LLMAgentConfig,
    ) -> None:
        self.kind = kind
        self.name = config.name or kind
        self.generator = generator
        self.tokenizer = tokenizer
        self.env = env
        self.config = config
        self.template = env.template
        self.generate_calls = 0
        self._episodes: dict[int, _Episode] = {}
        plans = {
            "direct": self._plan_direct,
            "naive-rag": self._plan_naive_rag,
            "iter-retgen": self._plan_iter_retgen,
            "oracle": self._plan_oracle,
        }
        if kind not in plans:
            raise ValueError(
                f"unknown prompt agent kind {kind!r}; expected one of: {', '.join(plans)}"
            )
        self._plan = plans[kind]
        self.oracle_searches = min(config.oracle_max_searches, env.max_turns - 1)

    # ------------------------------------------------------------------ protocol
    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        """Start the slot's episode (the oracle also looks up the golden answers)."""
        golds: list[str] = []
        if self.kind == "oracle":
            golds = list(self.env.examples[int(info["index"])].golden_answers)
        ep = _Episode(question=observation["question"], golden_answers=golds)
        if self.kind == "oracle":
            q = ep.question.strip()
            candidates = [query for a in golds for query in (f"{q} {a}", a)]
            ep.queries = [c for i, c in enumerate(candidates) if c not in candidates[:i]] or [q]
        self._episodes[slot] = ep

    def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
        """Plan every slot's action; generate for those that need it in one call."""
        plans = {slot: self._plan(self._episodes[slot], obs) for slot, obs in observations.items()}
        wanted = [(slot, p) for slot, p in plans.items() if isinstance(p, _Generate)]
        actions = {slot: p for slot, p in plans.items() if isinstance(p, str)}
        if wanted:
            params = SamplingParams(
                max_new_tokens=self.config.max_new_tokens,
                temperature=self.config.temperature,
                top_p=self.config.top_p,
                seed=self.config.seed + self.generate_calls,
            )
            prompts = [self.tokenizer.encode(p.prompt, add_special_tokens=False) for _, p in wanted]
            gens = self.generator.generate(prompts, params)
            self.generate_calls += 1
            for (slot, plan), gen in zip(wanted, gens):
                self._episodes[slot].generated_tokens += len(gen.token_ids)
                text = str(self.tokenizer.decode(gen.token_ids, skip_special_tokens=True))
                actions[slot] = plan.finish(text)
        for slot in observations:
            self._episodes[slot].turns += 1
        return {slot: actions[slot] for slot in observations}

    def episode_stats(self, slot: int) -> dict[str, float]:
        """``generated_tokens`` (and ``oracle_hit`` for the oracle)."""
        ep = self._episodes[slot]
        stats = {"generated_tokens": float(ep.generated_tokens)}
        if self.kind == "oracle":
            stats["oracle_hit"] = float(ep.oracle_hit)
        return stats

    # ------------------------------------------------------------------ actions
    def _search(self, query: str, generation: str | None = None) -> str:
        think = "" if generation is None else f"<think>{inline(generation)}</think>\n"
        return f"{think}<search>{inline(query)}</search>"

    def _answer(self, generation: str) -> str:
        answer = inline(short_answer(generation)) or inline(self.config.empty_answer)
        boxed = f"\\boxed{{{answer}}}" if self.template.boxed_answer else f" {answer} "
        return f"<think>{inline(generation)}</think>\n<answer>{boxed}</answer>"

    def passages(self, observation: str) -> str:
        """The passages of an observation as the reader's prompt shows them.

        Args:
            observation: The env's observation text (a result block, possibly followed by the
                env's "answer now" note).

        Returns:
            The ``Doc i (Title: ...) text`` lines between the template's result tags, or the
            whole text stripped when it has no result block.
        """
        prefix, suffix = self.template.observation_prefix, self.template.observation_suffix
        start = observation.find(prefix)
        end = observation.rfind(suffix)
        if start >= 0 and end >= start + len(prefix):
            return observation[start + len(prefix) : end].strip()
        return observation.strip()

    def _read(self, ep: _Episode, obs: Observation, finish: Callable[[str], str]) -> _Generate:
        messages = rag_messages(ep.question, self.passages(obs["observation"]))
        return _Generate(render_chat(self.tokenizer, messages), finish)

    # ------------------------------------------------------------------ plans
    def _plan_direct(self, ep: _Episode, obs: Observation) -> str | _Generate:
        return _Generate(render_chat(self.tokenizer, direct_messages(ep.question)), self._answer)

    def _plan_naive_rag(self, ep: _Episode, obs: Observation) -> str | _Generate:
        if ep.turns == 0:
            return self._search(ep.question)
        return self._read(ep, obs, self._answer)

    def _plan_iter_retgen(self, ep: _Episode, obs: Observation) -> str | _Generate:
        if ep.turns == 0:
            return self._search(ep.question)
        if ep.turns >= self.config.iterations:
            return self._read(ep, obs, self._answer)

        def search_again(generation: str) -> str:
            answer = short_answer(generation)
            return self._search(f"{ep.question} {answer}".strip(), generation)

        return self._read(ep, obs, search_again)

    def _plan_oracle(self, ep: _Episode, obs: Observation) -> str | _Generate:
        if ep.turns == 0:
            return self._search(ep.queries[0])
        shown = self.passages(obs["observation"])
        ep.oracle_hit = ep.oracle_hit or bool(sub_em(shown, ep.golden_answers))
        if ep.oracle_hit or ep.turns >= min(self.oracle_searches, len(ep.queries)):
            return self._read(ep, obs, self._answer)
        return self._search(ep.queries[ep.turns])


# --------------------------------------------------------------------------- factory
def _min_turns(kind: str, config: LLMAgentConfig) -> int:
    return {"direct": 1, "naive-rag": 2, "iter-retgen": config.iterations + 1, "oracle": 2}.get(
        kind, 1
    )


def make_agent(
    kind: str,
    generator: Generator,
    tokenizer: PreTrainedTokenizerBase,
    *,
    env: SearchQAEnv | SearchQAVectorEnv,
    config: LLMAgentConfig | None = None,
) -> Agent:
    """Build the LLM baseline ``kind`` for ``env``.

    Args:
        kind: One of :data:`AGENT_KINDS`.
        generator: Samples the model's text (e.g. :class:`~research_agents.generation.hf.
            HFGenerator`); all slots of a round share one ``generate`` call.
        tokenizer: The model's tokenizer.
        env: The env (or vector env) the agent will play: its template, ``max_turns`` and split
            must be those of the env passed to :func:`~research_env.agent.play`.
        config: Settings (default: :class:`LLMAgentConfig`).

    Returns:
        The agent (it also implements :class:`~research_env.agent.EpisodeStats`).

    Raises:
        ValueError: If ``kind`` is unknown, or the env allows too few turns for it
            (``naive-rag`` and ``oracle`` need 2, ``iter-retgen`` ``iterations + 1``).

    Example:
        >>> from research_agents.baselines.llm import make_agent  # doctest: +SKIP
        >>> agent = make_agent("naive-rag", HFGenerator(model, tok), tok, env=vec)  # doctest: +SKIP
        >>> records = play(agent, vec, range(16))  # doctest: +SKIP
    """
    if kind not in AGENT_KINDS:
        raise ValueError(f"unknown agent kind {kind!r}; expected one of: {', '.join(AGENT_KINDS)}")
    config = config if config is not None else LLMAgentConfig()
    single = env.envs[0] if isinstance(env, SearchQAVectorEnv) else env
    need = _min_turns(kind, config)
    if single.max_turns < need:
        detail = " (iterations searches, then the answer)" if kind == "iter-retgen" else ""
        raise ValueError(
            f"agent kind {kind!r} needs an env with max_turns >= {need}{detail}, "
            f"got max_turns={single.max_turns}"
        )
    if kind == "research":
        return ResearchPolicyAgent(
            generator,
            tokenizer,
            single,
            turns=settings_from(TurnSettings, config),
            seed=config.seed,
            name=config.name or kind,
        )
    return PromptAgent(kind, generator, tokenizer, single, config)
