"""Gymnasium spaces of real text: arbitrary Unicode strings, and chat conversations.

``gymnasium.spaces.Text`` only admits characters from a fixed charset (letters and digits by
default), so it rejects real generated text and retrieved passages. :class:`UnicodeText`
admits every ``str`` up to a maximum length, in the spirit of Minigrid's ``MissionSpace``;
:class:`Conversation` admits lists of ``{"role", "content"}`` messages (the observation of
:class:`~research_env.wrappers.ChatMessages`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["MAX_TEXT", "Conversation", "Message", "UnicodeText"]

MAX_TEXT = 1 << 24
"""The longest string (in characters) the env's and the wrappers' text spaces admit."""

Message = dict[str, str]
"""One chat message: ``{"role": ..., "content": ...}``."""

_SAMPLE_CAP = 64
_ASCII_LO, _ASCII_HI = 0x20, 0x7E  # printable ASCII
_BMP_LO, _BMP_HI = 0xA0, 0xFFFF  # the rest of the BMP, from NBSP (C1 controls skipped)
_SURROGATES = 0xE000 - 0xD800


class UnicodeText(spaces.Space[str]):
    """Any ``str`` of at most ``max_length`` characters (code points).

    ``sample()`` draws, from this space's ``np_random`` only, a string of random length in
    ``[0, min(max_length, 64)]`` mixing printable ASCII with arbitrary Basic Multilingual Plane
    code points (never surrogates, so samples always encode to UTF-8). The space is not
    flattenable to a ``Box``.

    Args:
        max_length: The longest admitted string, ``>= 0``.
        seed: Seed for the sampling PRNG.

    Examples:
        >>> space = UnicodeText(100, seed=0)
        >>> "Bogotá — 波哥大" in space, "x" * 101 in space, b"bytes" in space
        (True, False, False)
        >>> space.sample() == UnicodeText(100, seed=0).sample()
        True
    """

    def __init__(self, max_length: int, seed: int | np.random.Generator | None = None) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise TypeError(f"expected an int max_length, got {type(max_length).__name__}")
        if max_length < 0:
            raise ValueError(f"expected max_length >= 0, got {max_length}")
        self.max_length = int(max_length)
        super().__init__(dtype=str, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Always ``False``: strings have no fixed-size array form."""
        return False

    def sample(self, mask: Any | None = None, probability: Any | None = None) -> str:
        """Draw a random string (see the class docstring).

        Args:
            mask: Not supported; must be ``None``.
            probability: Not supported; must be ``None``.

        Returns:
            A string in this space.

        Raises:
            ValueError: If ``mask`` or ``probability`` is given.
        """
        if mask is not None or probability is not None:
            raise ValueError("UnicodeText.sample() supports neither mask nor probability")
        rng = self.np_random
        length = int(rng.integers(0, min(self.max_length, _SAMPLE_CAP) + 1))
        ascii_codes = rng.integers(_ASCII_LO, _ASCII_HI + 1, size=length)
        bmp_codes = rng.integers(_BMP_LO, _BMP_HI + 1 - _SURROGATES, size=length)
        bmp_codes = np.where(bmp_codes >= 0xD800, bmp_codes + _SURROGATES, bmp_codes)
        use_ascii = rng.random(size=length) < 0.5
        codes = np.where(use_ascii, ascii_codes, bmp_codes)
        return "".join(map(chr, codes.tolist()))

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a ``str`` of at most ``max_length`` characters.

        Args:
            x: Any object.

        Returns:
            ``True`` if ``x`` belongs to the space.
        """
        return isinstance(x, str) and len(x) <= self.max_length

    def to_jsonable(self, sample_n: Iterable[str]) -> list[str]:
        """Convert a batch of samples to JSON-able data (strings already are).

        Args:
            sample_n: Samples from this space.

        Returns:
            The samples as a list.
        """
        return list(sample_n)

    def from_jsonable(self, sample_n: list[Any]) -> list[str]:
        """Convert JSON data back to samples.

        Args:
            sample_n: Strings, as produced by :meth:`to_jsonable`.

        Returns:
            The samples as a list.

        Raises:
            TypeError: If an element is not a ``str``.
        """
        out = list(sample_n)
        for x in out:
            if not isinstance(x, str):
                raise TypeError(f"expected str samples, got {type(x).__name__}")
        return out

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnicodeText) and other.max_length == self.max_length

    def __hash__(self) -> int:
        return hash((UnicodeText, self.max_length))


class Conversation(spaces.Space[list[Message]]):
    """Lists of chat messages: ``{"role": r, "content": c}`` with ``r`` in ``roles``.

    Every message has exactly the keys ``role`` and ``content``; contents are strings of at
    most ``max_length`` characters. ``sample()`` draws up to 6 messages with random roles and
    :class:`~research_env.spaces.UnicodeText` contents. Not flattenable.

    Args:
        roles: The admitted roles.
        max_length: The longest admitted content.
        seed: Seed for the sampling PRNG.

    Examples:
        >>> space = Conversation(("system", "user", "assistant"))
        >>> [{"role": "user", "content": "Hi"}] in space
        True
        >>> [{"role": "tool", "content": "Hi"}] in space  # not an admitted role
        False
        >>> ({"role": "user", "content": ""},) in space  # a tuple, not a list
        False
    """

    def __init__(
        self,
        roles: Sequence[str] = ("system", "user", "assistant", "tool"),
        max_length: int = MAX_TEXT,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        if not roles or not all(isinstance(r, str) and r for r in roles):
            raise ValueError(f"expected a non-empty sequence of role names, got {roles!r}")
        self.roles = tuple(roles)
        self._text = UnicodeText(max_length)
        self.max_length = self._text.max_length
        super().__init__(dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        """Always ``False``: conversations have no fixed-size array form."""
        return False

    def sample(self, mask: Any | None = None, probability: Any | None = None) -> list[Message]:
        """Draw a random conversation (see the class docstring).

        Args:
            mask: Not supported; must be ``None``.
            probability: Not supported; must be ``None``.

        Returns:
            A conversation in this space.

        Raises:
            ValueError: If ``mask`` or ``probability`` is given.
        """
        if mask is not None or probability is not None:
            raise ValueError("Conversation.sample() supports neither mask nor probability")
        n = int(self.np_random.integers(0, 7))
        roles = self.np_random.integers(0, len(self.roles), size=n)
        self._text.seed(int(self.np_random.integers(2**31)))  # contents follow this space's seed
        return [{"role": self.roles[int(r)], "content": self._text.sample()} for r in roles]

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a list of well-formed messages.

        Args:
            x: Any object.

        Returns:
            ``True`` if ``x`` belongs to the space.
        """
        return isinstance(x, list) and all(
            isinstance(m, dict)
            and m.keys() == {"role", "content"}
            and m["role"] in self.roles
            and m["content"] in self._text
            for m in x
        )

    def to_jsonable(self, sample_n: Iterable[list[Message]]) -> list[list[Message]]:
        """Convert a batch of samples to JSON-able data (they already are).

        Args:
            sample_n: Samples from this space.

        Returns:
            The samples as a list.
        """
        return [[dict(m) for m in conv] for conv in sample_n]

    def from_jsonable(self, sample_n: list[Any]) -> list[list[Message]]:
        """Convert JSON data back to samples.

        Args:
            sample_n: Conversations, as produced by :meth:`to_jsonable`.

        Returns:
            The samples as a list.

        Raises:
            ValueError: If an element is not a conversation of this space.
        """
        out = [[dict(m) for m in conv] for conv in sample_n]
        for i, conv in enumerate(out):
            if conv not in self:
                raise ValueError(f"sample {i} is not a conversation of {self!r}: {conv!r:.200}")
        return out

    def __repr__(self) -> str:
        return f"Conversation(roles={self.roles}, max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Conversation)
            and other.roles == self.roles
            and other.max_length == self.max_length
        )

    def __hash__(self) -> int:
        return hash((Conversation, self.roles, self.max_length))
