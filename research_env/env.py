"""SearchQA-v0: question answering by interleaving generated text with search.

The module is longer than our ~400-line rule, for one stated reason: a third of it is the
class docstring, which is the env card (``docs/env.md`` is generated from it, as Gymnasium's
toy-text envs document themselves). The code itself is the reset / step logic; the episode's
bookkeeping is in :mod:`.episode`, the rules of each paper in :mod:`.protocols`, the settings in
:mod:`.settings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import gymnasium as gym
from gymnasium import spaces

from research_env.actions import Action, Answer, Invalid, Search, parse_action
from research_env.data.types import Passage, QAExample
from research_env.episode import Episode
from research_env.protocols import (
    SearchProtocol,
    get_protocol,
    paper_components,
    score_response,
)
from research_env.protocols import research as research_rules
from research_env.protocols import searchr1 as searchr1_rules
from research_env.resolve import (
    DEFAULT_DATASET,
    default_retriever,
    resolve_dataset,
    resolve_retriever,
)
from research_env.retrieval.base import RetrievalError, Retriever
from research_env.retrieval.closed import PerExampleRetriever
from research_env.rewards import RewardFn, get_reward_fn, score_answer
from research_env.spaces import MAX_TEXT, UnicodeText
from research_env.templates import ChatTokenizer, PromptTemplate, get_template

if TYPE_CHECKING:
    from research_env.toolcall import ToolCallFormat

ObsType = dict[str, str]
DEFAULT_EOS_TEXT = "<|im_end|>"  # ChatML's end of turn (SmolLM2, Qwen2.5 instruct)


@dataclass(frozen=True)
class _End:
    """A segment that ends the episode under a whole-response protocol (research, searchr1).

    Attributes:
        eos: Whether the segment ended with the EOS text.
        reason: ``"eos"``, ``"over_length"`` (no stop and no EOS), ``"answer"`` or
            ``"final_turn"``.
    """

    eos: bool
    reason: str


class SearchQAEnv(gym.Env[ObsType, str]):
    r"""Answer a question by thinking, searching and answering in generated text.

    ## Description
    Each episode is one question. The agent is a language model: every action is a segment of
    text it generated, ending at ``</search>`` or ``</answer>``. A search action returns the
    top-k retrieved passages as a ``<result>…</result>`` block that the agent appends to its
    context; an answer action ends the episode with an exact-match reward. This is the rollout
    of ReSearch (arXiv 2503.19470) and Search-R1, as a Gymnasium environment.

    The default world is offline and embedded: passages and multi-hop questions generated from
    the CIA World Factbook (public domain), retrieved with BM25.

    ## Action Space
    ``UnicodeText``: any ``str``. The segment is parsed by
    :func:`research_env.actions.parse_action`: ``<search>q</search>`` searches for ``q``,
    ``<answer>…</answer>`` answers (the content of ``\boxed{…}`` when present), anything else is
    invalid. ``<think>…</think>`` may precede either. Queries are capped at ``max_query_chars``.

    ## Observation Space
    ``Dict`` of ``UnicodeText``:

    - ``prompt``: the formatted prompt to start generating from (fixed for the episode);
    - ``observation``: the text to append after the last action — empty after ``reset``, the
      ``<result>`` block after a search, a corrective message after an invalid action when
      ``invalid_action="correct"``;
    - ``question``: the bare question.

    The agent keeps its own context: prompt + its generated segments + observations.

    ## Starting State
    ``reset(seed=s)`` draws a question uniformly from the split with ``np_random``;
    ``reset(options={"index": i})`` or ``reset(options={"question_id": "..."})`` picks one.

    ## Rewards
    0 after a search or an invalid action. On an answer, the ``reward`` preset applied to the
    answer's components: ``em`` (default, 1 if the normalised answer equals a normalised golden
    answer), ``f1`` (token F1), ``research`` (ReSearch: F1 if the format is valid and F1 > 0, 0.1
    for a valid format with a wrong answer, 0 for an invalid format), ``searchr1_format``. Any
    callable ``RewardComponents -> float`` works too. Truncated episodes get 0.

    ## Episode End
    Terminated on an answer, or on an invalid action (unless ``invalid_action="correct"``).
    Truncated when ``max_turns`` actions have been taken without an answer. With
    ``last_turn="answer_only"`` the observation before the last turn tells the agent to answer,
    and a search on the last turn is invalid.

    ## Information
    ``reset`` info: ``question_id``, ``question_type``, ``index``, ``split``.
    ``step`` info: ``turn``, ``action_type`` (search | answer | invalid), ``query``,
    ``query_truncated``, ``retrieved_ids``, ``retrieved_titles``, ``num_searches``,
    ``retrieval_error`` (``None`` or the message), ``retrieval_error_kind`` (``None`` or the
    error's kind: ``timeout``, ``connection``, ``server``, ``rejected``, ``bad_response``,
    ``not_recorded``, ``unavailable``), ``invalid_reason``, ``prediction``,
    ``reward_components`` (always: ``em``, ``f1``, ``sub_em``, ``format_ok``,
    ``answer_in_retrieval``, ``support_recall``: the share of the question's supporting
    passages shown so far, ``None`` where it lists none; ``bridge_recall``: the share of the
    entities a question goes through but does not name that the queries named, ``None`` where
    there are none; ``hops``: the question's hop count, ``metadata["hops"]`` or else one per
    supporting passage, ``None`` where it gives neither), and at the end ``golden_answers``,
    ``retrieval_failed`` and ``end_reason`` (answer | invalid | max_turns).

    ## Arguments
    ```python
    gym.make("SearchQA-v0", dataset="factbook", split="train", retriever="bm25", top_k=5,
             max_turns=4, reward="em", template="research_instruct", tokenizer=None,
             invalid_action="terminate", last_turn="normal", max_query_chars=512,
             render_mode=None, protocol="ours", eos_text=None, action_format="tags")
    ```
    - ``protocol``: ``"ours"`` (the default, research-env's rules), ``"research"`` (ReSearch's
      code: stop at ``</search>`` or EOS, ``"Title"\ntext`` result blocks, its format check,
      answer extraction and F1/0.1 reward over the whole response) or ``"searchr1"``
      (Search-R1's turn cut, ``<information>`` blocks, corrective messages, final turn
      without search, EM over the last ``<answer>``). It sets ``top_k``, ``max_turns``,
      ``reward``, ``template``, ``invalid_action`` and ``last_turn``; any of them passed
      explicitly overrides it. See ``docs/fidelity.md``.
    - ``action_format``: ``"tags"`` (``<search>``) or ``"tool_call"`` (Hermes/Qwen
      ``<tool_call>{"name": "search", ...}</tool_call>``; the prompt carries the tool schema
      through the tokenizer's chat template and results come back as a tool message;
      :mod:`research_env.toolcall`). ``protocol="ours"`` only.
    - ``eos_text``: the tokenizer's EOS text (default: ``tokenizer.eos_token``, else
      ``<|im_end|>``); under ``research`` an action ending with it ends the episode.
    - ``dataset``: ``"factbook"``, a registered benchmark name (``"hotpotqa"``), a
      FlashRAG-style QA file (``.jsonl``, ``.json``, ``.jsonl.gz``), or a list of ``QAExample``.
    - ``split``: ``"train"`` / ``"dev"`` / ``"test"``; a QA file is one split, so with a file
      anything but ``"train"`` (the whole file) is refused.
    - ``retriever``: ``"bm25"`` (bm25s backend), ``"bm25:rank_bm25"``, ``"closed"`` (each
      question searches only the passages in its ``metadata["context"]``, HotpotQA distractor
      style), ``"remote:<url>"``, or any ``Retriever`` (one with ``for_example(example)`` is
      specialised per question on ``reset``). Default: ``"closed"`` for questions that all
      carry their passages, else BM25 over the Factbook corpus for the Factbook world and
      example lists; a dataset file or name must name its retriever.
    - ``top_k``: passages per search. ``max_turns``: actions per episode.
    - ``reward``: preset name or callable. ``template``: ``research_base``,
      ``research_instruct``, ``research_compact`` (passages cut to 40 words),
      ``research_hops`` (tags only, with a two-search example), ``research_hops_guided``
      (the same in the corpus's result layout, with a how-to sentence),
      ``research_hops_titles`` (results end with a line naming their countries) or
      ``searchr1`` (or a ``PromptTemplate``).
    - ``tokenizer``: optional; its chat template formats the instruct prompt.
    - ``invalid_action``: ``"terminate"`` or ``"correct"`` (Search-R1's corrective observation).
    - ``last_turn``: ``"normal"`` or ``"answer_only"``.
    - ``render_mode``: ``None`` or ``"ansi"`` (``render()`` returns the transcript).

    Under ``protocol="research"`` a segment that does not contain ``</search>`` ends the
    episode: the whole response is scored (``end_reason`` ``eos`` or ``over_length``, and
    ``info["eos"]``). Read ``env.unwrapped.stop_strings`` for the stop strings to generate with.

    ## Version History
    - v0: initial release (Factbook world, BM25, EM reward).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012 (Gymnasium API)

    def __init__(
        self,
        dataset: str | Path | Sequence[QAExample] = DEFAULT_DATASET,
        split: str = "train",
        retriever: str | Retriever | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        reward: str | RewardFn | None = None,
        template: str | PromptTemplate | None = None,
        tokenizer: ChatTokenizer | None = None,
        invalid_action: Literal["terminate", "correct"] | None = None,
        last_turn: Literal["normal", "answer_only", "no_search"] | None = None,
        max_query_chars: int = 512,
        render_mode: str | None = None,
        protocol: str | SearchProtocol = "ours",
        eos_text: str | None = None,
        action_format: Literal["tags", "tool_call"] = "tags",
    ) -> None:
        self.protocol = get_protocol(protocol)
        proto = self.protocol
        top_k = proto.top_k if top_k is None else top_k
        max_turns = proto.max_turns if max_turns is None else max_turns
        reward = proto.reward if reward is None else reward
        template = proto.template if template is None else template
        invalid_action = proto.invalid_action if invalid_action is None else invalid_action
        last_turn = proto.last_turn if last_turn is None else last_turn
        if isinstance(tokenizer, str | Path):
            raise TypeError(
                f"tokenizer: expected a tokenizer object, got the name {str(tokenizer)!r}; pass "
                f"transformers.AutoTokenizer.from_pretrained({str(tokenizer)!r})"
            )
        if eos_text is None:
            eos_text = getattr(tokenizer, "eos_token", None) or DEFAULT_EOS_TEXT
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"expected top_k >= 1, got {top_k!r}")
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"expected max_turns >= 1, got {max_turns!r}")
        if invalid_action not in ("terminate", "correct"):
            raise ValueError(
                f"expected invalid_action 'terminate' or 'correct', got {invalid_action!r}"
            )
        if last_turn not in ("normal", "answer_only", "no_search"):
            raise ValueError(
                f"expected last_turn 'normal', 'answer_only' or 'no_search', got {last_turn!r}"
            )
        if max_query_chars < 1:
            raise ValueError(f"expected max_query_chars >= 1, got {max_query_chars!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"expected render_mode None or 'ansi', got {render_mode!r}")
        self.examples = resolve_dataset(dataset, split)
        self.split = split
        self._index_of = {e.id: i for i, e in enumerate(self.examples)}
        self.retriever = resolve_retriever(
            default_retriever(dataset, self.examples) if retriever is None else retriever
        )
        # Checked once: a runtime Protocol isinstance costs ~75 µs, too much for every reset.
        self._per_example = isinstance(self.retriever, PerExampleRetriever)
        self._episode_retriever: Retriever = self.retriever
        self.top_k = top_k
        self.max_turns = max_turns
        self.reward_fn = get_reward_fn(reward)
        self.template = template if isinstance(template, PromptTemplate) else get_template(template)
        self.tokenizer = tokenizer
        self.invalid_action = invalid_action
        self.last_turn = last_turn
        self.eos_text = eos_text
        if action_format not in ("tags", "tool_call"):
            raise ValueError(f"expected action_format 'tags' or 'tool_call', got {action_format!r}")
        if action_format == "tool_call" and self.protocol.rules != "ours":
            raise ValueError(
                f"action_format='tool_call' needs protocol='ours' (the papers' rules read tags), "
                f"got protocol={self.protocol.name!r}"
            )
        self.action_format = action_format
        self.tool_format: ToolCallFormat | None = None
        if action_format == "tool_call":
            from research_env.toolcall import ToolCallFormat

            self.tool_format = ToolCallFormat(tokenizer)
        self.max_query_chars = max_query_chars
        self.render_mode = render_mode
        self.action_space = UnicodeText(MAX_TEXT)
        self.observation_space = cast(
            spaces.Space[ObsType],
            spaces.Dict(
                {key: UnicodeText(MAX_TEXT) for key in ("prompt", "observation", "question")}
            ),
        )
        self._episode: Episode | None = None
        self._ending = ""  # render()'s last line once the episode is over
        self._pending: Action | _End | None = None

    # ------------------------------------------------------------------ reset
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        """Start an episode on a question, drawn with ``np_random`` unless ``options`` picks one."""
        super().reset(seed=seed)
        index = self._pick_index(options or {})
        example = self.examples[index]
        if self._per_example:  # closed corpus: its own passages
            self._episode_retriever = cast(PerExampleRetriever, self.retriever).for_example(example)
        if self.tool_format is not None:
            prompt = self.tool_format.render_prompt(example.question)
        else:
            prompt = self.template.render(example.question, self.tokenizer)
        self._episode = Episode(example=example, prompt=prompt)
        self._ending = ""
        self._pending = None
        obs = {"prompt": prompt, "observation": "", "question": example.question}
        info = {
            "question_id": example.id,
            "question_type": example.metadata.get("type"),
            "index": index,
            "split": self.split,
        }
        return obs, info

    def _pick_index(self, options: dict[str, Any]) -> int:
        unknown = set(options) - {"index", "question_id"}
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; expected 'index' or 'question_id'"
            )
        if "question_id" in options:
            qid = options["question_id"]
            if qid not in self._index_of:
                raise ValueError(f"options['question_id']: no question with id {qid!r}")
            return self._index_of[qid]
        if "index" in options:
            index = options["index"]
            if (
                isinstance(index, bool)
                or not isinstance(index, int)
                or not 0 <= index < len(self.examples)
            ):
                raise ValueError(
                    f"options['index']: expected an int in [0, {len(self.examples)}), got {index!r}"
                )
            return index
        return int(self.np_random.integers(len(self.examples)))

    # ------------------------------------------------------------------- step
    def step(self, action: str) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        """Apply one generated segment; see the class docstring for the semantics."""
        query = self.begin_step(action)
        retrieved: list[Passage] | RetrievalError | None = None
        if query is not None:
            try:
                retrieved = self._episode_retriever.search(query, self.top_k)
            except RetrievalError as e:
                retrieved = e
        return self.finish_step(retrieved)

    # A step in two halves, so that a vector env can retrieve for all its sub-envs in one
    # batched call in between (see research_env.vector).
    def begin_step(self, action: str) -> str | None:
        """Record and parse ``action``; return the query to retrieve for, or ``None``.

        Must be followed by :meth:`finish_step` with the retrieval result.

        Raises:
            RuntimeError: Before ``reset()``, after the episode ended, or with a step pending.
            TypeError: If ``action`` is not a ``str``.
        """
        ep = self._episode
        if ep is None:
            raise RuntimeError("call reset() before step()")
        if ep.done:
            raise RuntimeError("the episode is over; call reset() before step()")
        if self._pending is not None:
            raise RuntimeError("begin_step() called twice without finish_step()")
        if not isinstance(action, str):
            raise TypeError(f"expected the action to be a str, got {type(action).__name__}")
        last = ep.turns + 1 >= self.max_turns
        parsed: Action | _End
        if self.protocol.rules == "research":
            action, parsed = self._research_segment(action)
        elif self.protocol.rules == "searchr1":
            action, parsed = self._searchr1_segment(action)
        else:
            parse = self.tool_format.parse if self.tool_format is not None else parse_action
            parsed = parse(action, max_query_chars=self.max_query_chars)
        ep.record_action(action)
        if isinstance(parsed, Search) and last and self.last_turn == "answer_only":
            parsed = Invalid(reason="search_on_last_turn", detail="the last turn must answer")
        elif last and self.last_turn == "no_search" and not isinstance(parsed, _End):
            parsed = _End(eos=False, reason="final_turn")  # Search-R1: nothing more is run
        self._pending = parsed
        return parsed.query if isinstance(parsed, Search) and parsed.query else None

    def _research_segment(self, action: str) -> tuple[str, Action | _End]:
        """ReSearch's turn: up to ``</search>`` (a search) or the EOS text (the end)."""
        stop, eos = action.find("</search>"), action.find(self.eos_text)
        if stop != -1 and (eos == -1 or eos >= stop + len("</search>")):
            segment = action[: stop + len("</search>")]
            query = research_rules.search_query(segment)[: self.max_query_chars]
            return segment, Search(query=query)
        if eos != -1:
            return action[:eos], _End(eos=True, reason="eos")
        return action, _End(eos=False, reason="over_length")

    def _searchr1_segment(self, action: str) -> tuple[str, Action | _End]:
        """Search-R1's turn: cut after ``</search>`` or ``</answer>``, then the first action."""
        segment = searchr1_rules.cut_turn(action)
        kind, content = searchr1_rules.parse_turn(segment)
        if kind == "search":
            return segment, Search(query=content[: self.max_query_chars])
        if kind == "answer":
            return segment, _End(eos=False, reason="answer")
        return segment, Invalid(reason="no_action_tag", detail="no <search> or <answer> pair")

    def finish_step(
        self, retrieved: list[Passage] | RetrievalError | None
    ) -> tuple[ObsType, float, bool, bool, dict[str, Any]]:
        """Complete the step begun by :meth:`begin_step`.

        Args:
            retrieved: The passages for the query ``begin_step`` returned, the
                ``RetrievalError`` that retrieving raised, or ``None`` when it returned no query.

        Returns:
            ``(observation, reward, terminated, truncated, info)`` as from :meth:`step`.
        """
        ep, parsed = self._episode, self._pending
        if ep is None or parsed is None:
            raise RuntimeError("finish_step() called without begin_step()")
        self._pending = None
        last = ep.turns >= self.max_turns
        info: dict[str, Any] = {
            "turn": ep.turns,
            "action_type": "invalid",
            "query": None,
            "query_truncated": False,
            "retrieved_ids": [],
            "retrieved_titles": [],
            "retrieval_error": None,
            "retrieval_error_kind": None,
            "invalid_reason": None,
            "prediction": None,
        }
        reward, terminated, observation = 0.0, False, ""
        components = score_answer(None, ep.example.golden_answers, format_ok=False)

        if isinstance(parsed, Search):
            info.update(action_type="search", query=parsed.query, query_truncated=parsed.truncated)
            ep.queries.append(parsed.query)
            if not parsed.query and self.protocol.rules != "ours":
                retrieved = []  # the papers send "" to their server; we retrieve nothing
            observation = self._observe(ep, retrieved, info)
        elif isinstance(parsed, _End):
            reward, components, prediction = self._score_response(ep, parsed)
            info.update(action_type="answer" if prediction is not None else "end")
            info.update(prediction=prediction, eos=parsed.eos)
            terminated = True
            info["end_reason"] = parsed.reason
        elif isinstance(parsed, Answer):
            info.update(action_type="answer", prediction=parsed.text)
            components = score_answer(parsed.text, ep.example.golden_answers, self._format_ok(ep))
            reward = float(self.reward_fn(components))
            terminated = True
            info["end_reason"] = "answer"
        else:
            ep.invalid_actions += 1
            info["invalid_reason"] = parsed.reason
            info["invalid_detail"] = parsed.detail
            if self.invalid_action == "terminate":
                terminated = True
                info["end_reason"] = "invalid"
            else:
                observation = self.template.format_invalid(parsed.reason)

        truncated = not terminated and last
        if truncated:
            info["end_reason"] = "max_turns"
        elif not terminated and self.last_turn == "answer_only" and ep.turns == self.max_turns - 1:
            observation += self.template.format_answer_now()
        if self.tool_format is not None and observation and not (terminated or truncated):
            observation = self.tool_format.observation(observation.strip())
        ep.record_observation(observation)
        ep.done = terminated or truncated

        info["num_searches"] = ep.searches
        info["reward_components"] = {
            "em": components.em,
            "f1": components.f1,
            "sub_em": components.sub_em,
            "format_ok": components.format_ok,
            "answer_in_retrieval": ep.answer_in_retrieval,
            "support_recall": ep.support_recall,
            "bridge_recall": ep.bridge_recall,
            "hops": ep.hops,
        }
        if ep.done:
            self._ending = (
                f"[end] {info['end_reason']}: reward {reward:g}, prediction "
                f"{info.get('prediction')!r}, gold {list(ep.example.golden_answers)}"
            )
            info["golden_answers"] = list(ep.example.golden_answers)
            info["retrieval_failed"] = ep.retrieval_failed
            info["invalid_actions"] = ep.invalid_actions
        obs = {"prompt": ep.prompt, "observation": observation, "question": ep.example.question}
        return obs, reward, terminated, truncated, info

    def _score_response(self, ep: Episode, end: _End) -> tuple[float, Any, str | None]:
        """Reward, components and prediction of a whole response under a paper protocol."""
        golds = list(ep.example.golden_answers)
        reward = score_response(
            self.protocol, ep.response, golds, eos=end.eos, eos_text=self.eos_text, prompt=ep.prompt
        )
        if self.protocol.rules == "research":
            format_ok = research_rules.check_format(ep.response)[0]
            try:
                # ReSearch's evaluation predicts "" for a response that ran over length.
                prediction = research_rules.extract_answer(ep.response) if end.eos else None
            except research_rules.BoxError:
                prediction = None
        else:
            prediction = searchr1_rules.extract_answer(ep.response, prompt=ep.prompt)
            if self.protocol.reward == "searchr1_format":
                format_ok = searchr1_rules.valid_sequence(ep.prompt + ep.response)[0]
            else:
                format_ok = prediction is not None
        return reward, paper_components(prediction, golds, format_ok), prediction

    def _render(self, passages: Sequence[Passage]) -> str:
        if self.protocol.rules == "research":
            return research_rules.render_passages([p.contents for p in passages])
        if self.protocol.rules == "searchr1":
            return searchr1_rules.render_passages([p.contents for p in passages])
        return self.template.format_observation(passages)

    def _observe(
        self, ep: Episode, retrieved: list[Passage] | RetrievalError | None, info: dict[str, Any]
    ) -> str:
        if not isinstance(retrieved, list):
            message = str(retrieved) if retrieved is not None else "no retrieval result given"
            ep.retrieval_failed = True
            info["retrieval_error"] = message
            info["retrieval_error_kind"] = getattr(retrieved, "kind", "unavailable")
            return self.template.format_error(message)
        ep.record_passages(retrieved)
        info["retrieved_ids"] = [p.id for p in retrieved]
        info["retrieved_titles"] = [p.title for p in retrieved]
        return self._render(retrieved)

    def _format_ok(self, ep: Episode) -> bool:
        if ep.invalid_actions:
            return False
        if self.tool_format is not None:
            return True  # tool calls and the answer parsed; the tag check does not apply
        ok, _reason = self.template.check_format(ep.response)
        return ok

    # ----------------------------------------------------------------- render
    def render(self) -> str | None:
        """Return the episode transcript as text when ``render_mode="ansi"``."""
        if self.render_mode != "ansi":
            return None
        ep = self._episode
        if ep is None:
            return ""
        lines = [f"[question] {ep.example.question}"]
        for role, text in ep.log:
            lines.append(f"[{role}] {text.strip()}")
        if self._ending:
            lines.append(self._ending)
        return "\n".join(lines) + "\n"

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """The strings generation should stop at (kept in the output), as the protocol fixes.

        Under a protocol that ``ends_at_eos`` (``research``), a segment that ended at the
        end-of-sequence token must end with :attr:`eos_text` (decode it with the special
        tokens kept, or append the tokenizer's ``eos_token``).
        """
        if self.tool_format is not None:
            return self.tool_format.stop_strings
        if self.protocol.rules == "ours":
            return tuple(self.template.stop_strings)
        return self.protocol.stop_strings

    @property
    def eos_suffix(self) -> str:
        """The text an agent appends to a segment that ended at EOS.

        :attr:`eos_text` under a protocol that ``ends_at_eos`` (``research``), else ``""``.
        """
        return self.eos_text if self.protocol.ends_at_eos else ""

    @property
    def episode_retriever(self) -> Retriever:
        """The retriever this episode searches.

        That is ``retriever``, or in closed-corpus mode the one ``retriever.for_example`` built
        for the episode's question.
        """
        return self._episode_retriever

    @property
    def episode(self) -> Episode | None:
        """The episode in progress (read-only use: analysis and debugging)."""
        return self._episode
