"""``searchqa view``: samples written by the trainer's code from real env episodes, the page
rendered by a real headless Chromium (DOM after its script ran, and the screenshot's pixels).

The browser tests skip, saying why, where Chromium is not installed (``apt-get install
chromium``); everything else runs everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import research_env  # noqa: F401
from research_env.view import before_after, load_episodes, write_view

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (apt-get install chromium): browser check"
)


def _play(env: gym.Env, index: int, actions: list[str]) -> tuple[float, dict]:
    env.reset(options={"index": index})
    reward, info = 0.0, {}
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return float(reward), info


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose samples.jsonl the trainer's sample_record wrote from real episodes:
    two questions, each answered wrong at steps 1-2 and (the capital one) right at steps 3-4."""
    pytest.importorskip("torch")
    from research_agents.grpo.rollout import Trajectory
    from research_agents.grpo.samples import sample_record

    env = gym.make("SearchQA-v0", split="train", template="research_compact", top_k=3)
    inner = env.unwrapped
    capital = next(i for i, e in enumerate(inner.examples) if e.metadata["type"] == "capital")
    currency = next(i for i, e in enumerate(inner.examples) if e.metadata["type"] == "currency")
    out = tmp_path_factory.mktemp("run")
    rows = []
    plays = [(capital, False), (currency, False), (capital, True), (currency, False)]
    for step, (index, right) in enumerate(plays, start=1):
        example = inner.examples[index]
        answer = example.golden_answers[0] if right else "Atlantis"
        actions = [
            f"<think>look it up</think><search>{example.question}</search>",
            f"<answer>{answer}</answer>",
        ]
        reward, info = _play(env, index, actions)
        traj = Trajectory(prompt_ids=[], reward=reward, question_index=index, info=info, turns=2)
        rows.append(sample_record(step, traj, 0.5 if reward else -0.5, inner))
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_samples_hold_the_passages_and_view_renders_them(run_dir: Path) -> None:
    episodes = load_episodes(run_dir / "samples.jsonl")
    assert [e["step"] for e in episodes] == [1, 2, 3, 4]
    assert [e["correct"] for e in episodes] == [False, False, True, False]
    first = episodes[2]
    assert first["reward_components"]["em"] == 1.0 and len(first["retrieved_ids"]) == 3
    observations = [t for role, t in first["log"] if role == "observation"]
    assert observations and "Doc 1 (Title:" in observations[0]
    pairs = before_after(episodes)
    assert [(a["step"], b["step"]) for a, b in pairs] == [(1, 3), (2, 4)]
    page = write_view(run_dir)
    text = page.read_text()
    # top-3 passages per search, boxed; pairs repeat their two episodes
    assert text.count('class="passage"') == 3 * (4 + 4)
    assert 'class="seg think"' in text and 'class="seg answer"' in text


def test_view_cli_and_its_errors(run_dir: Path, tmp_path: Path) -> None:
    code = "import sys; from research_env.cli import main; sys.exit(main())"
    out = tmp_path / "page.html"
    proc = subprocess.run(
        [sys.executable, "-c", code, "view", str(run_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 episodes, 1 correct, steps 1-4, 2 question types" in proc.stdout
    assert out.is_file() and f"view: {out}" in proc.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n{oops\n')
    for argv, message in (
        ([str(tmp_path / "nope")], "no run folder or records file at"),
        ([str(tmp_path)], "no samples.jsonl"),
        ([str(bad)], "bad.jsonl:2: not valid JSON"),
    ):
        proc = subprocess.run(
            [sys.executable, "-c", code, "view", *argv], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("searchqa view: ") and message in proc.stderr
        assert proc.stderr.count("\n") == 1


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_chromium
def test_page_in_headless_chromium_filters_by_address(run_dir: Path) -> None:
    """The DOM after the page's script ran: counts, and the filters preset from the address."""
    page = write_view(run_dir).resolve()
    dom = _chromium("--dump-dom", page.as_uri()).stdout
    assert re.search(r'<b id="count">4</b>', dom), dom[-2000:]
    wrong = _chromium("--dump-dom", page.as_uri() + "#correct=0").stdout
    assert '<b id="count">3</b>' in wrong
    cards = re.findall(r'<article class="episode (correct|wrong)( hidden)?"', wrong)
    episodes_only = cards[-4:]  # the Episodes section follows the before/after pairs
    assert [c for c, hidden in episodes_only if not hidden] == ["wrong"] * 3
    typed = _chromium("--dump-dom", page.as_uri() + "#type=capital&min=3").stdout
    assert '<b id="count">1</b>' in typed


@needs_chromium
def test_screenshot_shows_the_colours(run_dir: Path, tmp_path: Path) -> None:
    """Pixels, not strings: the screenshot holds the think / search / result / answer colours
    and the correct and wrong badges, in visible amounts."""
    image_module = pytest.importorskip("PIL.Image")
    page = write_view(run_dir).resolve()
    shot = tmp_path / "shot.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    image = image_module.open(shot).convert("RGB")
    assert image.size == (1200, 2400)
    counts = {rgb: n for n, rgb in image.getcolors(maxcolors=1 << 24) or []}
    colours = {
        "result box (#fef3c7)": (0xFE, 0xF3, 0xC7),
        "passage (#fffbeb)": (0xFF, 0xFB, 0xEB),
        "search (#dbeafe)": (0xDB, 0xEA, 0xFE),
        "answer (#dcfce7)": (0xDC, 0xFC, 0xE7),
        "think (#ececec)": (0xEC, 0xEC, 0xEC),
        "correct (#16a34a)": (0x16, 0xA3, 0x4A),
        "wrong (#dc2626)": (0xDC, 0x26, 0x26),
    }
    seen = {name: counts.get(rgb, 0) for name, rgb in colours.items()}
    assert all(n > 200 for n in seen.values()), seen
    assert seen["passage (#fffbeb)"] > seen["answer (#dcfce7)"]  # passages fill the page


def test_eval_records_keep_the_observations(tmp_path: Path) -> None:
    """play()'s records (what `searchqa eval --out` writes) carry the passages the agent read."""
    pytest.importorskip("torch")
    from research_agents.baselines import ScriptedFactbookAgent

    from research_env.agent import PerEpisode, play

    env = gym.make("SearchQA-v0", split="dev", top_k=3)
    records = play(PerEpisode(ScriptedFactbookAgent, name="scripted"), env, indices=[0, 1, 2])
    rows = [r.as_dict() for r in records]
    assert all(row["log"][0] == ["action", row["actions"][0]] for row in rows)
    roles = [role for role, _ in rows[0]["log"]]
    assert roles[:2] == ["action", "observation"] and "Doc 1 (Title:" in rows[0]["log"][1][1]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    text = write_view(path).read_text()
    assert "observations were not recorded" not in text
    assert text.count('class="passage"') >= 3
