import pickle
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from research_env.spaces import UnicodeText


def test_contains():
    space = UnicodeText(10)
    assert "" in space
    assert "Bogotá 波哥" in space
    assert "x" * 10 in space
    assert "x" * 11 not in space
    assert "\x00\ud800\U0010ffff" in space  # NUL, a lone surrogate, the last code point
    assert "😀" * 10 in space  # length counts code points


@pytest.mark.parametrize("bad", [None, 1, 1.5, b"bytes", ["a"], np.array(["a"]), np.array("a")])
def test_non_str_rejected(bad):
    assert bad not in UnicodeText(100)


def test_str_subclass_accepted_numpy_str():
    assert np.str_("Lima") in UnicodeText(10)


def test_huge_string():
    assert "a" * 10_000_000 in UnicodeText(1 << 24)
    assert "a" * 10_000_001 not in UnicodeText(10_000_000)


def test_sample_is_in_space_and_varied():
    space = UnicodeText(1 << 24, seed=0)
    samples = [space.sample() for _ in range(300)]
    assert all(s in space for s in samples)
    assert all(len(s) <= 64 for s in samples)
    assert len(set(samples)) > 250
    chars = "".join(samples)
    assert any(c.isascii() for c in chars) and any(not c.isascii() for c in chars)
    assert all(not 0xD800 <= ord(c) <= 0xDFFF for c in chars)
    assert all(ord(c) <= 0xFFFF for c in chars)
    chars.encode("utf-8")  # never raises: no surrogates


def test_sample_respects_small_max_length():
    space = UnicodeText(3, seed=1)
    lengths = {len(space.sample()) for _ in range(200)}
    assert lengths == {0, 1, 2, 3}
    assert UnicodeText(0, seed=0).sample() == ""


def test_seed_determinism():
    a, b = UnicodeText(50, seed=123), UnicodeText(50, seed=123)
    assert [a.sample() for _ in range(20)] == [b.sample() for _ in range(20)]
    a.seed(7)
    first = [a.sample() for _ in range(5)]
    a.seed(7)
    assert [a.sample() for _ in range(5)] == first
    c = UnicodeText(50, seed=124)
    assert [c.sample() for _ in range(5)] != first


def test_sample_uses_only_np_random():
    import random

    expected = UnicodeText(50, seed=3).sample()
    space = UnicodeText(50, seed=3)
    random.seed(999)  # global PRNG state must not matter
    np.random.seed(999)
    assert space.sample() == expected
    # A generator passed in is used as is: equal generators give equal samples.
    a = UnicodeText(50, seed=np.random.default_rng(5))
    b = UnicodeText(50, seed=np.random.default_rng(5))
    assert [a.sample() for _ in range(3)] == [b.sample() for _ in range(3)]


def test_mask_and_probability_rejected():
    with pytest.raises(ValueError):
        UnicodeText(5).sample(mask=(3, None))
    with pytest.raises(ValueError):
        UnicodeText(5).sample(probability=(3, None))


def test_bad_max_length():
    with pytest.raises(ValueError):
        UnicodeText(-1)
    with pytest.raises(TypeError):
        UnicodeText(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        UnicodeText(True)


def test_repr_eq_hash():
    assert repr(UnicodeText(5)) == "UnicodeText(max_length=5)"
    assert UnicodeText(5) == UnicodeText(5, seed=3)
    assert UnicodeText(5) != UnicodeText(6)
    assert UnicodeText(5) != spaces.Text(5)
    assert len({UnicodeText(5), UnicodeText(5), UnicodeText(6)}) == 2


def test_not_flattenable():
    space = UnicodeText(5)
    assert space.is_np_flattenable is False
    assert space.shape is None


def test_jsonable_roundtrip():
    space = UnicodeText(20, seed=0)
    batch = [space.sample() for _ in range(5)]
    assert space.from_jsonable(space.to_jsonable(batch)) == batch
    with pytest.raises(TypeError):
        space.from_jsonable([1])


def test_pickle_roundtrip():
    space = UnicodeText(20, seed=0)
    clone = pickle.loads(pickle.dumps(space))
    assert clone == space
    assert clone.sample() == space.sample()


def test_inside_dict_space():
    d = spaces.Dict({"prompt": UnicodeText(100), "observation": UnicodeText(100)}, seed=42)
    s = d.sample()
    assert set(s) == {"prompt", "observation"}
    assert s in d
    assert {"prompt": "x" * 101, "observation": ""} not in d
    d2 = spaces.Dict({"prompt": UnicodeText(100), "observation": UnicodeText(100)}, seed=42)
    assert d2.sample() == s
    jsonable = d.to_jsonable([s])
    assert d.from_jsonable(jsonable) == [s]


class EchoEnv(gym.Env[dict[str, str], str]):
    """Observes the last action; a minimal env built on UnicodeText spaces."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it so)

    def __init__(self) -> None:
        self.action_space = UnicodeText(1000)
        self.observation_space = spaces.Dict(
            {"prompt": UnicodeText(1000), "observation": UnicodeText(1000)}
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        super().reset(seed=seed)
        prompt = f"question {int(self.np_random.integers(1000))}"
        return {"prompt": prompt, "observation": ""}, {}

    def step(self, action: str) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        return {"prompt": "p", "observation": action[::-1]}, float(len(action)), False, False, {}


def test_check_env_with_unicode_text_spaces():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(EchoEnv(), skip_render_check=True)
