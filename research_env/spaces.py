"""A Gymnasium space of arbitrary Unicode strings.

``gymnasium.spaces.Text`` only admits characters from a fixed charset (letters and digits by
default), so it rejects real generated text and retrieved passages. :class:`UnicodeText`
admits every ``str`` up to a maximum length, in the spirit of Minigrid's ``MissionSpace``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["UnicodeText"]

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
