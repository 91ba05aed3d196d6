"""Small usability fixes of SearchQA-v0 (issue 16.10): what a new user trips over first."""

from pathlib import Path

import gymnasium as gym
import pytest

import research_env  # noqa: F401


def test_render_ends_with_the_end_reason_and_reward() -> None:
    env = gym.make("SearchQA-v0", render_mode="ansi")
    env.reset(options={"question_id": "factbook/capital/pe"})
    env.step("<search>capital of Peru</search>")
    assert "[end]" not in env.render()
    env.step("<answer>\\boxed{Cusco}</answer>")
    last = env.render().splitlines()[-1]
    assert last == "[end] answer: reward 0, prediction 'Cusco', gold ['Lima']"
    env.reset(options={"question_id": "factbook/capital/pe"})
    assert "[end]" not in env.render()  # a new episode starts clean


def test_tokenizer_given_as_a_name_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"tokenizer: expected a tokenizer object, got the name"):
        gym.make("SearchQA-v0", tokenizer="HuggingFaceTB/SmolLM2-135M-Instruct")


def test_readme_loop_runs_as_printed_and_ends_with_reward_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    loop = readme.split("## A 10-line loop", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(loop, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "What is the capital of Peru?"
    assert printed[-1].startswith("1.0 {'em': 1.0, 'f1': 1.0")
