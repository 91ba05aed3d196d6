r"""Gymnasium wrappers for SearchQA-v0: episode statistics, chat messages, token ids.

* :class:`RecordEpisodeStatistics` — Gymnasium's wrapper of the same name, plus what matters
  here: at the end of every episode ``info["episode"]`` holds the return, the number of turns
  and searches, EM / F1, whether the format was valid and why the episode ended; recent
  episodes are kept in queues.
* :class:`ChatMessages` — the observation becomes the conversation so far, a list of
  ``{"role", "content"}`` dicts (the template's system and user messages, then the agent's
  actions as ``assistant`` turns and the env's observations as ``user`` or ``tool`` turns),
  ready for ``tokenizer.apply_chat_template`` or a chat-completions API.
* :class:`TokenIds` — the observation dict gains ``prompt_ids`` and ``observation_ids``, the
  text tokenised once, exactly as the GRPO rollout of ``research_agents`` tokenises it.

They compose: ``RecordEpisodeStatistics`` passes observations through untouched, and
``TokenIds`` must sit *inside* ``ChatMessages`` (which replaces the observation dict). None of
them needs torch or transformers.

Example:
    >>> import gymnasium as gym
    >>> import research_env
    >>> from research_env.data.types import QAExample
    >>> env = gym.make("SearchQA-v0", dataset=[QAExample("q1", "Capital of Peru?", ["Lima"])])
    >>> env = RecordEpisodeStatistics(ChatMessages(env))
    >>> messages, info = env.reset(seed=0)
    >>> [m["role"] for m in messages]
    ['system', 'user']
    >>> messages, reward, terminated, truncated, info = env.step("<answer>\\boxed{Lima}</answer>")
    >>> messages[-1]["role"], reward, info["episode"]["em"], info["episode"]["searches"]
    ('assistant', 1.0, 1.0, 0)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal, Protocol, SupportsFloat, TypeVar, cast

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from research_env.records import EpisodeStatistics, episode_record
from research_env.spaces import Conversation, Message
from research_env.templates import PromptTemplate

__all__ = [
    "ChatMessages",
    "Conversation",
    "EpisodeStatistics",
    "Message",
    "RecordEpisodeStatistics",
    "TextTokenizer",
    "TokenIds",
]

ObsT = TypeVar("ObsT")

_OBS_KEYS = ("prompt", "observation", "question")


# ------------------------------------------------------------------------------------ statistics
class RecordEpisodeStatistics(gym.Wrapper[ObsT, str, ObsT, str], gym.utils.RecordConstructorArgs):
    """Record per-episode return, turns, searches, EM/F1 and format into ``info["episode"]``.

    Like :class:`gymnasium.wrappers.RecordEpisodeStatistics` (``"r"`` and ``"l"`` keep their
    meaning) with SearchQA's fields added; see :class:`EpisodeStatistics`. The wall time of an
    episode goes to :attr:`time_queue` only, not into ``info``, so that the same seed and actions
    give the same info (as Gymnasium's env checker demands).

    The numbers come from the env's final ``info`` (``num_searches``, ``reward_components``,
    ``end_reason``), so any wrapper that keeps ``info`` may sit in between.

    Args:
        env: A SearchQA-v0 env, possibly wrapped.
        buffer_length: How many recent episodes the queues keep.

    Attributes:
        episode_count: Episodes finished so far.
        return_queue: Returns of the recent episodes.
        length_queue: Lengths (turns) of the recent episodes.
        time_queue: Wall-clock seconds of the recent episodes.
        searches_queue: Searches of the recent episodes.
        em_queue: EM of the recent episodes.
        f1_queue: F1 of the recent episodes.
        format_ok_queue: Format validity of the recent episodes.
        episode_queue: The full :class:`EpisodeStatistics` of the recent episodes.
    """

    def __init__(self, env: gym.Env[ObsT, str], buffer_length: int = 100) -> None:
        if isinstance(buffer_length, bool) or not isinstance(buffer_length, int):
            raise TypeError(f"expected an int buffer_length, got {buffer_length!r}")
        if buffer_length < 1:
            raise ValueError(f"expected buffer_length >= 1, got {buffer_length}")
        gym.utils.RecordConstructorArgs.__init__(self, buffer_length=buffer_length)
        super().__init__(env)
        self.episode_count = 0
        self.return_queue: deque[float] = deque(maxlen=buffer_length)
        self.length_queue: deque[int] = deque(maxlen=buffer_length)
        self.time_queue: deque[float] = deque(maxlen=buffer_length)
        self.searches_queue: deque[int] = deque(maxlen=buffer_length)
        self.em_queue: deque[float] = deque(maxlen=buffer_length)
        self.f1_queue: deque[float] = deque(maxlen=buffer_length)
        self.format_ok_queue: deque[bool] = deque(maxlen=buffer_length)
        self.episode_queue: deque[EpisodeStatistics] = deque(maxlen=buffer_length)
        self._return = 0.0
        self._length = 0
        self._searches = 0
        self._start = time.perf_counter()
        self._question_id: str | None = None
        self._reset_info: Mapping[str, Any] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsT, dict[str, Any]]:
        """Reset the env and the running counters of the episode."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._return, self._length, self._searches = 0.0, 0, 0
        self._start = time.perf_counter()
        self._reset_info = info
        qid = info.get("question_id")
        self._question_id = None if qid is None else str(qid)
        return obs, info

    def step(self, action: str) -> tuple[ObsT, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; when the episode ends, add ``info["episode"]`` and update the queues."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        if info.get("action_type") == "search":
            self._searches += 1
        if terminated or truncated:
            info = dict(info)
            info["episode"] = self._finish(info).copy()  # the queue keeps its own
        return obs, reward, terminated, truncated, info

    def _finish(self, info: Mapping[str, Any]) -> EpisodeStatistics:
        record = episode_record(
            self._reset_info, info, question="", reward=self._return, turns=self._length
        )
        stats = EpisodeStatistics(
            r=self._return,
            l=self._length,
            # a wrapper in between may drop num_searches: then count the search actions seen
            searches=record.searches if "num_searches" in info else self._searches,
            em=record.em,
            f1=record.f1,
            sub_em=record.sub_em,
            format_ok=record.format_ok,
            answer_in_retrieval=record.answer_in_retrieval,
            end_reason=record.end_reason,
            retrieval_failed=record.retrieval_failed,
            question_id=self._question_id,
        )
        self.episode_count += 1
        self.return_queue.append(stats["r"])
        self.length_queue.append(stats["l"])
        self.time_queue.append(round(time.perf_counter() - self._start, 6))
        self.searches_queue.append(stats["searches"])
        self.em_queue.append(stats["em"])
        self.f1_queue.append(stats["f1"])
        self.format_ok_queue.append(stats["format_ok"])
        self.episode_queue.append(stats)
        self._start = time.perf_counter()
        return stats

    def summary(self) -> dict[str, float]:
        """Means over the episodes in the queues (empty dict before the first episode ends).

        Returns:
            ``episodes`` (how many are averaged), ``return``, ``length``, ``searches``, ``em``,
            ``f1``, ``format_ok`` and ``answered`` (fraction that ended with an answer).
        """
        n = len(self.episode_queue)
        if n == 0:
            return {}
        answered = sum(s["end_reason"] == "answer" for s in self.episode_queue)
        return {
            "episodes": float(n),
            "return": sum(self.return_queue) / n,
            "length": sum(self.length_queue) / n,
            "searches": sum(self.searches_queue) / n,
            "em": sum(self.em_queue) / n,
            "f1": sum(self.f1_queue) / n,
            "format_ok": sum(self.format_ok_queue) / n,
            "answered": answered / n,
        }


# --------------------------------------------------------------------------------- chat messages
def _search_qa_template(env: gym.Env[Any, Any], wrapper: str) -> PromptTemplate:
    template = getattr(env.unwrapped, "template", None)
    if not isinstance(template, PromptTemplate):
        raise TypeError(
            f"{wrapper} needs a SearchQA-v0 env underneath (one with a PromptTemplate in "
            f"env.unwrapped.template), got {type(env.unwrapped).__name__}"
        )
    return template


def _check_text_obs_space(env: gym.Env[Any, Any], wrapper: str) -> spaces.Dict:
    space = env.observation_space
    if not isinstance(space, spaces.Dict) or not set(_OBS_KEYS) <= set(space.spaces):
        raise TypeError(
            f"{wrapper} needs the SearchQA observation dict ({', '.join(_OBS_KEYS)}) from the "
            f"env it wraps, got observation space {space!r}; put {wrapper} inside any wrapper "
            "that replaces the observation (such as ChatMessages)"
        )
    return space


class ChatMessages(
    gym.Wrapper[list[Message], str, dict[str, Any], str], gym.utils.RecordConstructorArgs
):
    """Make the observation the conversation so far: a list of ``{"role", "content"}`` dicts.

    After ``reset`` it is the prompt as messages, exactly those the env's template renders the
    prompt from (:meth:`~research_env.templates.PromptTemplate.messages`): the system prompt
    (if the template has one) and the user message holding the question. Each ``step`` appends
    the action as an ``assistant`` message, then the env's observation text (e.g. the
    ``<result>`` block) as an ``observation_role`` message, verbatim; an empty observation
    (after an answer) adds nothing. So a chat-native agent can send ``messages`` to a
    chat-completions API or ``tokenizer.apply_chat_template`` as they are.

    Every call returns new dicts: changing a returned conversation does not change the next.

    Args:
        env: A SearchQA-v0 env, possibly wrapped (observation dict intact).
        observation_role: The role of the env's observations: ``"user"`` (default; every chat
            template accepts it) or ``"tool"`` (for templates with tool turns).

    Note:
        The prompt an LLM agent generates from is ``apply_chat_template(messages,
        add_generation_prompt=True)``, which for a chat-template env is the env's own
        ``prompt`` on the first turn. On later turns it differs from the token-level view of
        the GRPO rollout (prompt + generated segments + observations in one assistant turn):
        chat templates close every turn with end-of-turn tokens.
    """

    def __init__(
        self, env: gym.Env[dict[str, Any], str], observation_role: Literal["user", "tool"] = "user"
    ) -> None:
        if observation_role not in ("user", "tool"):
            raise ValueError(
                f"expected observation_role 'user' or 'tool', got {observation_role!r}"
            )
        gym.utils.RecordConstructorArgs.__init__(self, observation_role=observation_role)
        super().__init__(cast(Any, env))  # gymnasium types Wrapper.__init__'s env as the outer env
        self._inner = env
        _check_text_obs_space(env, "ChatMessages")
        self.template = _search_qa_template(env, "ChatMessages")
        self.observation_role = observation_role
        self.observation_space = Conversation(
            ("system", "user", "assistant", observation_role)
            if observation_role == "tool"
            else ("system", "user", "assistant")
        )
        self._messages: list[Message] = []

    @property
    def messages(self) -> list[Message]:
        """A copy of the conversation so far."""
        return [dict(m) for m in self._messages]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[Message], dict[str, Any]]:
        """Reset the env; the conversation restarts from the prompt's messages."""
        obs, info = self._inner.reset(seed=seed, options=options)
        self._messages = self.template.messages(obs["question"])
        return self.messages, info

    def step(self, action: str) -> tuple[list[Message], SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, then append the action and the env's observation to the conversation."""
        obs, reward, terminated, truncated, info = self._inner.step(action)
        self._messages.append({"role": "assistant", "content": action})
        if obs["observation"]:
            self._messages.append({"role": self.observation_role, "content": obs["observation"]})
        return self.messages, reward, terminated, truncated, info


# ------------------------------------------------------------------------------------- token ids
class TextTokenizer(Protocol):
    """Anything that turns text into token ids, e.g. a Hugging Face tokenizer."""

    def encode(self, text: str, *, add_special_tokens: bool = ...) -> list[int]:
        """Return the ids of ``text`` (called with ``add_special_tokens=False``)."""
        ...


class TokenIds(
    gym.Wrapper[dict[str, Any], str, dict[str, Any], str], gym.utils.RecordConstructorArgs
):
    """Add the token ids of the prompt and of each observation to the observation dict.

    The observation gains ``prompt_ids`` (the prompt's ids, the same in every observation of
    an episode) and ``observation_ids`` (the ids of ``observation``, empty after ``reset`` and
    after an answer). Both are 1-D ``np.int64`` arrays (``.tolist()`` gives plain lists), in a
    ``Sequence(Discrete(vocab_size), stack=True)`` space.

    The rule is the GRPO rollout's (:func:`research_agents.grpo.rollout.rollout`):
    ``tokenizer.encode(text, add_special_tokens=False)``, the prompt once per episode and each
    observation once, never re-encoding the context. An agent that keeps
    ``prompt_ids + its generated ids + observation_ids + …`` holds exactly the sequence the
    rollout trains on. (The rollout stops at the end of an episode; this wrapper also
    tokenises a final observation, e.g. the results of a search on the last turn.)

    Args:
        env: A SearchQA-v0 env, possibly wrapped (observation dict intact).
        tokenizer: Any :class:`TextTokenizer`; a transformers tokenizer works as it is.
        vocab_size: The bound of the id space; default ``len(tokenizer)``.

    Raises:
        TypeError: If ``vocab_size`` is not given and the tokenizer has no ``len()``.
    """

    def __init__(
        self,
        env: gym.Env[dict[str, Any], str],
        tokenizer: TextTokenizer,
        vocab_size: int | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, tokenizer=tokenizer, vocab_size=vocab_size)
        super().__init__(cast(Any, env))  # gymnasium types Wrapper.__init__'s env as the outer env
        self._inner = env
        inner = _check_text_obs_space(env, "TokenIds")
        if not callable(getattr(tokenizer, "encode", None)):
            raise TypeError(
                f"expected a tokenizer with encode(text, add_special_tokens=False), got "
                f"{type(tokenizer).__name__}"
            )
        if vocab_size is None:
            try:
                vocab_size = len(cast(Any, tokenizer))
            except TypeError:
                raise TypeError(
                    f"{type(tokenizer).__name__} has no len(); pass vocab_size= to TokenIds"
                ) from None
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"expected vocab_size >= 1, got {vocab_size!r}")
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        ids_space = spaces.Sequence(spaces.Discrete(vocab_size), stack=True)
        self.observation_space = spaces.Dict(
            {**inner.spaces, "prompt_ids": ids_space, "observation_ids": ids_space}
        )
        self._prompt_ids: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    def encode(self, text: str) -> npt.NDArray[np.int64]:
        """Tokenise ``text`` as the rollout does (no special tokens); ``""`` gives no ids.

        Raises:
            ValueError: If the tokenizer returns an id outside ``[0, vocab_size)``.
        """
        if not text:
            return np.zeros(0, dtype=np.int64)
        ids = np.asarray(self.tokenizer.encode(text, add_special_tokens=False), dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"tokenizer.encode returned shape {ids.shape}, expected a 1-D list")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise ValueError(f"tokenizer.encode returned id {bad}, outside [0, {self.vocab_size})")
        return ids

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the env and tokenise the episode's prompt."""
        obs, info = self._inner.reset(seed=seed, options=options)
        self._prompt_ids = self.encode(obs["prompt"])
        return self._with_ids(obs, np.zeros(0, dtype=np.int64)), info

    def step(self, action: str) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and tokenise the observation it returned."""
        obs, reward, terminated, truncated, info = self._inner.step(action)
        return (
            self._with_ids(obs, self.encode(obs["observation"])),
            reward,
            terminated,
            truncated,
            info,
        )

    def _with_ids(
        self, obs: Mapping[str, Any], observation_ids: npt.NDArray[np.int64]
    ) -> dict[str, Any]:
        return {**obs, "prompt_ids": self._prompt_ids.copy(), "observation_ids": observation_ids}
