"""``searchqa train / eval / leaderboard`` as a user runs them: real subprocesses, real files.

Every bad input must end in one line on stderr naming what was wrong (and the valid choices),
exit status 2, no traceback, and before any model loads (these tests load none).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def searchqa(
    *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``searchqa ARGV`` the way the console script does (``research_env.cli:main``)."""
    code = "import sys; from research_env.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], command: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"searchqa {command}: "), lines[0]
    return lines[0]


# The cases run as subprocesses (the console script's path); the rest run in-process
# through the same main() (a subprocess costs seconds of imports each).
TRAIN_CASES = [
    (["--preset", "tinyy"], ["unknown preset 'tinyy'", "factbook-smollm2", "did you mean 'tiny'"]),
    (["--lr", "abc"], ["--lr: expected float, got 'abc'"]),
    (["--lrr", "1e-4"], ["--lrr: not a GRPOConfig field", "did you mean 'lr'"]),
    (["--steps", "-1"], ["steps: expected >= 0, got -1"]),
]
MORE_TRAIN_CASES = [
    (["--top_k", "0"], ["top_k: expected >= 1, got 0"]),
    (["--reward", "exact"], ["unknown reward 'exact'", "em, f1, sub_em"]),
    (["--generator", "vlm"], ["--generator: expected one of hf, vllm", "did you mean 'vllm'"]),
    (
        ["--question_types", "capitol"],
        ["'capitol' is not a question type of factbook/train", "capital, capital_reverse"],
    ),
    (["--curriculum", '[[0, ["brige"]]]'], ["curriculum: 'brige' is not a question type"]),
    (["--model", "smollm3"], ["no model folder at 'smollm3'", "'smollm2', 'tiny'"]),
    (
        ["--model", "runs/factbook-smollm2-multihop-stage1/checkpoint/model"],
        ["yet", "--preset factbook-smollm2-multihop-stage1"],
    ),
    (["--template", "research"], ["unknown template 'research'", "research_compact"]),
    (["--retriever", "bm26"], ["retriever: expected retriever 'bm25'"]),
    (["--reward_hook", "no_such_mod:f"], ["reward_hook: cannot import 'no_such_mod'"]),
    (["--config", "missing.yaml"], ["--config: no file at missing.yaml"]),
    (["--steps"], ["--steps: missing value"]),
    (["--dataset", "qa.csv"], ["dataset:"]),
]
EVAL_CASES = [
    (["--suite", "factbok", "--agent", "scripted"], ["unknown suite 'factbok'", "factbook-dev"]),
    (["--agent", "scriptd"], ["unknown agent 'scriptd'", "naive-reader", "'scripted'"]),
    (["--checkpoint", "/nope"], ["--checkpoint: no folder at /nope", "model/config.json"]),
    (["--model", "smollm3"], ["--model: no model folder at 'smollm3'", "'smollm2'"]),
]
MORE_EVAL_CASES = [
    (["--agent", "research"], ["needs --model or --checkpoint"]),
    (["--agent", "scripted", "--retriever", "bm25"], ["fixes its retriever"]),
    (["--agent", "scripted", "--task", "hotpot"], ["no task 'hotpot'", "factbook"]),
    (["--agent", "no_such_module:make"], ["cannot import 'no_such_module'"]),
    (["--split", "tst"], ["--split:", "'train', 'dev', 'test'"]),
    (["--preset", "nope"], ["unknown preset 'nope'"]),
    (["--agent", "scripted", "--judge-url", "http://x/v1"], ["go together"]),
    (["--suite", "research-paper", "--agent", "scripted"], ["data_dir"]),
]


def _check(line: str, expected: list[str]) -> None:
    for text in expected:
        assert text in line, line


@pytest.mark.parametrize(("argv", "expected"), TRAIN_CASES)
def test_train_bad_input_is_one_line(argv: list[str], expected: list[str]) -> None:
    _check(one_line_error(searchqa("train", "--preset", "tiny", *argv), "train"), expected)


@pytest.mark.parametrize(("argv", "expected"), EVAL_CASES)
def test_eval_bad_input_is_one_line(argv: list[str], expected: list[str]) -> None:
    _check(one_line_error(searchqa("eval", *argv), "eval"), expected)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["train", "--preset", "tiny", *a], e) for a, e in MORE_TRAIN_CASES]
    + [(["eval", *a], e) for a, e in MORE_EVAL_CASES],
)
def test_more_bad_input_in_process(
    argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from research_env.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"searchqa {argv[0]}: "), err
    _check(lines[0], expected)


def test_eval_one_task_of_a_paper_suite(tmp_path: Path) -> None:
    """``--task`` on a paper suite runs with only that task's file under ``--data-dir``."""
    (tmp_path / "bamboogle").mkdir()
    rows = [
        {"id": f"b-{i}", "question": f"What is the capital of {c}?", "golden_answers": [a]}
        for i, (c, a) in enumerate((("Peru", "Lima"), ("Chile", "Santiago")))
    ]
    (tmp_path / "bamboogle" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "--suite", "searchr1-paper", "--data-dir", str(tmp_path), "--agent"]
    proc = searchqa(*argv, "naive-reader", "--task", "bamboogle", "--retriever", "bm25")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "bamboogle: 2 questions" in proc.stdout, proc.stdout
    assert "nq" not in proc.stdout.replace("naive", "")
    line = one_line_error(searchqa(*argv, "naive-reader", "--task", "nq"), "eval")
    assert "nq/test.jsonl" in line or "nq" in line, line


def test_leaderboard_bad_entries_file_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(searchqa("leaderboard", "--entries", "nope.json"), "leaderboard")
    assert "--entries: no file at nope.json" in line
    bad = tmp_path / "entries.json"
    bad.write_text('[{"agent": "scripted", "modle": "x"}]')
    line = one_line_error(searchqa("leaderboard", "--entries", str(bad)), "leaderboard")
    assert "entries.json[0]: unknown key(s) ['modle']" in line
    assert "--entries FILE" in searchqa("leaderboard", "--help").stdout


def test_train_help_lists_every_field_with_type_and_default() -> None:
    from dataclasses import fields

    from research_agents.grpo.config import GRPOConfig

    proc = searchqa("train", "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for f in fields(GRPOConfig):
        assert f"  --{f.name} " in out, f.name
    assert "  --lr float (default 1e-06)" in out
    assert "  --trainable_layers int | None (default null)" in out
    assert '  --generator hf|vllm (default "hf")' in out
    assert "AdamW learning rate." in out  # the field's docstring


def test_config_file_and_overrides_resolve_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run.yaml"
    run.write_text(
        textwrap.dedent(
            """\
            preset: tiny
            lr: 2.0e-4
            steps: 5
            question_types: [capital, currency]
            extra: {note: from-file}
            """
        )
    )
    proc = searchqa(
        "train", "--config", str(run), "--steps", "7", "seed=3", "extra.run=b", "--print-config"
    )
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["model"] == "tiny"  # the file's preset
    assert cfg["lr"] == 2e-4 and cfg["question_types"] == ["capital", "currency"]
    assert cfg["steps"] == 7 and cfg["seed"] == 3  # the command line wins
    assert cfg["extra"] == {"note": "from-file", "run": "b"}
    # A saved run config (JSON) reads back as the same config (in-process from here on).
    from research_env.cli import main

    saved = tmp_path / "run_config.json"
    saved.write_text(json.dumps(cfg))
    assert main(["train", "--preset", "tiny", "--config", str(saved), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == cfg
    # Errors in a file name the file (and the line of a syntax error).
    for text, message in (
        ("preset: tiny\nlr: [1\n", "run.yaml:3: not valid YAML"),
        ("lrr: 1\n", "run.yaml: lrr: not a GRPOConfig field; did you mean 'lr'?"),
        ("steps: many\n", "run.yaml: steps: expected int, got 'many'"),
        ("- lr\n", "run.yaml: expected a mapping of GRPOConfig fields, got list"),
        ("preset: tinyy\n", "unknown preset 'tinyy'"),
    ):
        run.write_text(text)
        assert main(["train", "--config", str(run)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_env_only_install_names_the_extra(tmp_path: Path) -> None:
    """With torch / httpx unimportable (as in ``pip install research-env``), one line says
    which extra to install."""
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "for name in ('torch', 'transformers', 'httpx'):\n"
        "    sys.modules[name] = None\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    for argv, command in (
        (["train", "--preset", "tiny"], "train"),
        (["eval", "--agent", "research", "--model", "smollm2"], "eval"),
    ):
        line = one_line_error(searchqa(*argv, env=env), command)
        assert "from the 'agent' extra: pip install 'research-env[agent]'" in line, line
    helped = searchqa("train", "--help", env=env)  # GRPOConfig imports no torch: all fields show
    assert helped.returncode == 0 and "--config FILE" in helped.stdout
    assert "--lr float (default 1e-06)" in helped.stdout, helped.stdout
    assert "--top_k int (default 3)" in helped.stdout
    # Re-rendering the leaderboard needs neither torch nor matplotlib: the Markdown is written,
    # from the stored results of the checkout, whatever the current folder.
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "for name in ('torch', 'transformers', 'httpx', 'matplotlib'):\n"
        "    sys.modules[name] = None\n"
    )
    page = tmp_path / "board" / "LEADERBOARD.md"
    proc = searchqa("leaderboard", "--render-only", "--markdown", str(page), cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    said = proc.stdout + proc.stderr
    assert "no charts" in said and not list(page.parent.glob("*.png"))
    stored = len(list((ROOT / "benchmarks" / "results").glob("*/*.json")))  # every suite
    assert stored > 1 and f"({stored} rows)" in said
    assert page.read_text().count("\n| ") >= stored
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gymnasium as gym, research_env\n"
            "try:\n"
            "    gym.make('SearchQA-v0', retriever='remote:http://127.0.0.1:9')\n"
            "except ModuleNotFoundError as e:\n"
            "    print(e)\n",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "pip install 'research-env[server]'" in probe.stdout, probe.stderr


def test_user_agent_imports_from_the_current_folder(tmp_path: Path) -> None:
    """The docs' "add your agent": ``--agent my_agents:make`` beside ``my_agents.py``."""
    (tmp_path / "my_agents.py").write_text(
        textwrap.dedent(
            """\
            from research_env.agent import PerEpisode


            class Guess:
                def reset(self, question):
                    self.done = False

                def act(self, observation):
                    return "<answer>\\\\boxed{Paris}</answer>"


            def make():
                return PerEpisode(Guess, name="always Paris")
            """
        )
    )
    out = tmp_path / "result.json"
    proc = searchqa(
        "eval", "--agent", "my_agents:make", "--suite", "factbook", "--limit", "7",
        "--json", str(out), "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    task = result["results"]["factbook"]
    assert result["label"] == "my_agents:make" and task["n"] == 7
    assert task["metrics"]["answered"] == 1.0  # every question got the agent's answer


def test_first_search_on_a_cold_numba_cache_says_so(tmp_path: Path) -> None:
    """A cold numba cache (a fresh NUMBA_CACHE_DIR) makes the env say the first search compiles;
    a warm one says nothing."""
    code = "import gymnasium as gym, research_env; gym.make('SearchQA-v0')"
    note = "the first search compiles the BM25 kernel with numba"
    cold = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cold.returncode == 0 and note in cold.stderr, cold.stderr
    assert cold.stderr.count(note) == 1
    from research_env.resolve import numba_cache_cold

    if not numba_cache_cold():  # this checkout's cache is warm once any test has searched
        warm = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert warm.returncode == 0 and note not in warm.stderr


@pytest.mark.slow  # a real 3-step run of the tiny model: ~20 s idle, minutes on a loaded machine
def test_train_prints_each_step_as_it_ends(tmp_path: Path) -> None:
    """The step lines arrive while training still runs (not all at the end); evaluation shows a
    bar; the resolved config and sampled episodes are saved with the run."""
    out = tmp_path / "run"
    code = "import sys; from research_env.cli import main; sys.exit(main())"
    argv = ["train", "--preset", "tiny", "--steps", "3", "--output_dir", str(out)]
    argv += ["--eval_every", "3", "--eval_size", "2", "--checkpoint_every", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    running_at_first_step = None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step    1/3") and running_at_first_step is None:
            running_at_first_step = proc.poll() is None
    err = proc.stderr.read()
    assert proc.wait(timeout=600) == 0, err[-3000:]
    assert running_at_first_step, "".join(lines)  # printed live, before steps 2-3 ran
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split()[1] for s in steps] == ["1/3", "2/3", "3/3"]
    assert all(" s/step " in s and "ETA" in s and "reward" in s for s in steps)
    # the tiny random model never closes a tag: no update, and the line says so
    assert "(no update: every group's rewards were equal" in steps[0]
    assert "| eval EM" in steps[2] and "eval dev" in err  # the evaluation's bar
    assert "Traceback" not in err
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["steps"] == 3 and saved["model"] == "tiny"
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 1, 2, 2, 3, 3]  # 2 questions a step, one each
    assert all(r["log"] and r["log"][0][0] == "action" for r in rows)
    # The run's page, as a browser renders it (when Chromium is installed).
    view = searchqa("view", str(out))
    assert view.returncode == 0 and "6 episodes" in view.stdout, view.stderr
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is not None:
        page = (out / "view.html").resolve().as_uri()
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        assert '<b id="count">6</b>' in dom and dom.count('<article class="episode') >= 6


def test_union_fields_take_any_member() -> None:
    import typing

    from research_agents.commands.runconfig import UsageError, convert
    from research_agents.grpo.config import GRPOConfig

    threads = typing.get_type_hints(GRPOConfig)["threads"]
    assert convert("threads", "auto", threads) == "auto"
    assert convert("threads", "2", threads) == 2
    assert convert("threads", "null", threads) is None
    with pytest.raises(UsageError, match="threads: expected int or one of auto, got 'abc'"):
        convert("threads", "abc", threads)
