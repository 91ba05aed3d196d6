"""The leaderboard end to end: a tiny suite with a tiny model, stored JSON, Markdown and PNG."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from research_agents.eval.harness import SuiteResult
from research_agents.eval.leaderboard import load_results, render_markdown, run_leaderboard
from research_agents.eval.suites import Entry, Suite, Task, get_suite

from research_env.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real GRPO checkpoint of the tiny model (no training steps)."""
    from research_agents.grpo.presets import get_preset
    from research_agents.grpo.trainer import GRPOTrainer

    out = tmp_path_factory.mktemp("grpo")
    trainer = GRPOTrainer(get_preset("tiny").replace(output_dir=str(out), steps=0))
    return trainer.save_checkpoint()


def _suite(checkpoint: Path, missing: Path) -> Suite:
    factbook = get_suite("factbook")
    return dataclasses.replace(
        factbook,
        name="tiny",
        description="5 Factbook test questions",
        tasks=(Task("factbook", "factbook", "test", 5),),
        entries=(
            Entry("research", model="tiny", label="tiny ReSearch zero-shot"),
            Entry("naive-rag", model="tiny", label="tiny naive RAG"),
            Entry("research", checkpoint=str(checkpoint), label="tiny GRPO checkpoint"),
            Entry("scripted", label="scripted"),
            Entry("research", checkpoint=str(missing), label="not trained yet"),
        ),
    )


def _comparable(results_dir: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r.slug: r.comparable() for r in load_results(results_dir)}


def test_leaderboard_end_to_end_with_a_tiny_model(tmp_path: Path, checkpoint: Path) -> None:
    suite = _suite(checkpoint, tmp_path / "nowhere" / "checkpoint")
    results, page = tmp_path / "results", tmp_path / "LEADERBOARD.md"
    logs: list[str] = []
    report = run_leaderboard(
        suite, results_dir=results, markdown=page, batch_size=4, progress=False, log=logs.append
    )
    # Four rows ran; the missing checkpoint was skipped with a message naming it.
    assert len(report["ran"]) == 4
    assert list(report["skipped"]) == ["not trained yet"]
    assert "nowhere/checkpoint" in report["skipped"]["not trained yet"]
    stored = load_results(results)
    assert sorted(r.label for r in stored) == sorted(
        ["tiny ReSearch zero-shot", "tiny naive RAG", "tiny GRPO checkpoint", "scripted"]
    )
    assert len({r.protocol_hash for r in stored}) == 1
    by_label = {r.label: r for r in stored}
    tiny = by_label["tiny ReSearch zero-shot"]
    task = tiny.tasks["factbook"]
    assert task.summary.n == 5 and task.summary.metrics["tokens"] is not None
    assert tiny.provenance["weights_sha256"] and tiny.provenance["model"] == "tiny"
    assert by_label["scripted"].tasks["factbook"].summary.metrics["tokens"] is None
    # The checkpoint row says how it was trained and where that differs from the suite.
    details = by_label["tiny GRPO checkpoint"].provenance["checkpoint"]
    assert details["step"] == 0
    assert "top_k" in details["differs_from_suite"]  # the tiny preset trains with top-2
    records = (results / "tiny" / f"{tiny.slug}.jsonl").read_text().splitlines()
    assert len(records) == 5 and "generated_tokens" in json.loads(records[0])["stats"]
    # The page: one protocol group, every row, the chart.
    text = page.read_text()
    assert text.count("### Protocol") == 1 and "not comparable" not in text
    for r in stored:
        assert f"| {r.label} |" in text
    assert (tmp_path / "leaderboard_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Determinism: a second run stores the same results and renders the same page.
    first, first_page = _comparable(results), text
    run_leaderboard(
        suite, results_dir=results, markdown=page, batch_size=4, progress=False, log=logs.append
    )
    assert _comparable(results) == first
    assert page.read_text() == first_page
    timing = json.loads((results / "tiny" / f"{tiny.slug}.json").read_text())["timing"]
    assert timing["seconds"] > 0 and timing["started_at"]


def test_rows_of_other_protocols_form_their_own_group(tmp_path: Path, checkpoint: Path) -> None:
    suite = _suite(checkpoint, tmp_path / "missing")
    results, page = tmp_path / "results", tmp_path / "LEADERBOARD.md"
    scripted = [e for e in suite.entries if e.agent == "scripted"]
    run_leaderboard(
        suite,
        entries=scripted,
        results_dir=results,
        markdown=page,
        progress=False,
        log=lambda _: None,
    )
    # A stored row of the missing checkpoint is kept and rendered when its run is skipped.
    missing = suite.entries[-1]
    row = json.loads((results / "tiny" / "scripted.json").read_text())
    row.update(label=missing.display(), slug=missing.slug())
    (results / "tiny" / f"{missing.slug()}.json").write_text(json.dumps(row))
    top2 = dataclasses.replace(suite, env=dataclasses.replace(suite.env, top_k=2))
    report = run_leaderboard(
        top2,
        entries=[Entry("scripted", label="scripted top-2"), missing],
        results_dir=results,
        markdown=page,
        progress=False,
        log=lambda _: None,
    )
    assert "stored row is kept" in report["skipped"]["not trained yet"]
    text = page.read_text()
    assert text.count("### Protocol") == 2
    assert "**not comparable**" in text and "`tasks.factbook.env.top_k`" in text
    assert "| not trained yet |" in text and "| scripted top-2 |" in text
    stored = load_results(results)
    assert len({r.protocol_hash for r in stored}) == 2


def test_multi_task_suite_from_flashrag_files(tmp_path: Path) -> None:
    data = tmp_path / "FlashRAG_datasets"
    for name, split in (
        ("hotpotqa", "dev"),
        ("2wikimultihopqa", "dev"),
        ("musique", "dev"),
        ("bamboogle", "test"),
    ):
        (data / name).mkdir(parents=True)
        rows = [
            {"id": f"{name}-{i}", "question": f"What is the capital of {c}?", "golden_answers": [a]}
            for i, (c, a) in enumerate((("Peru", "Lima"), ("Chile", "Santiago")))
        ]
        (data / name / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="data_dir"):
        get_suite("research-paper")
    with pytest.raises(FileNotFoundError, match=r"nq/test\.jsonl"):
        get_suite("searchr1-paper", data_dir=data)
    suite = get_suite("research-paper", data_dir=data, retriever="bm25")
    assert [t.name for t in suite.tasks] == ["hotpotqa", "2wikimultihopqa", "musique", "bamboogle"]
    assert suite.env.top_k == 5 and suite.env.reward == "research"
    report = run_leaderboard(
        suite,
        entries=[Entry("naive-reader")],
        results_dir=tmp_path / "results",
        markdown=tmp_path / "LB.md",
        progress=False,
        log=lambda _: None,
    )
    assert len(report["ran"]) == 1
    (result,) = load_results(tmp_path / "results")
    assert list(result.tasks) == ["hotpotqa", "2wikimultihopqa", "musique", "bamboogle"]
    assert all(t.summary.n == 2 for t in result.tasks.values())
    text = (tmp_path / "LB.md").read_text()
    assert "| EM hotpotqa | EM 2wikimultihopqa | EM musique | EM bamboogle |" in text
    assert "reward `research`" in text and "top-5" in text


def test_one_task_of_a_paper_suite_needs_only_its_own_file(tmp_path: Path) -> None:
    data = tmp_path / "FlashRAG_datasets"
    (data / "bamboogle").mkdir(parents=True)
    row = {"id": "b-0", "question": "What is the capital of Peru?", "golden_answers": ["Lima"]}
    (data / "bamboogle" / "test.jsonl").write_text(json.dumps(row) + "\n")
    for name in ("research-paper", "searchr1-paper"):
        with pytest.raises(FileNotFoundError):  # the whole suite still needs every file
            get_suite(name, data_dir=data)
        suite = get_suite(name, data_dir=data, retriever="bm25", tasks=["bamboogle"])
        assert [(t.name, t.split) for t in suite.tasks] == [("bamboogle", "test")]
    with pytest.raises(ValueError, match=r"has no task 'hotpot'.*hotpotqa"):
        get_suite("research-paper", data_dir=data, tasks=["hotpot"])
    with pytest.raises(FileNotFoundError, match=r"musique"):
        get_suite("research-paper", data_dir=data, tasks=["bamboogle", "musique"])


def test_factbook_suite_evaluates_the_trained_preset_as_it_was_trained() -> None:
    from research_agents.grpo.presets import get_preset

    preset, suite = get_preset("factbook-smollm2"), get_suite("factbook")
    for key in ("template", "top_k", "last_turn", "retriever"):
        assert getattr(suite.env, key) == getattr(preset, key), key
    for key in ("max_new_tokens", "max_response_tokens", "response_prefix", "final_prefix"):
        assert getattr(suite.generation, key) == getattr(preset, key), key
    assert suite.generation.temperature == 0.0
    assert suite.tasks[0].split == preset.eval_split and suite.tasks[0].size == 96
    assert {e.agent for e in suite.entries} >= {
        "direct",
        "naive-rag",
        "iter-retgen",
        "research",
        "oracle",
    }


def test_multihop_suite_evaluates_the_multihop_preset_as_it_was_trained() -> None:
    from research_agents.grpo.presets import get_preset

    preset, suite = get_preset("factbook-smollm2-multihop"), get_suite("factbook-multihop")
    for key in ("template", "top_k", "last_turn", "retriever", "max_turns", "invalid_action"):
        assert getattr(suite.env, key) == getattr(preset, key), key
    for key in (
        "max_new_tokens",
        "max_response_tokens",
        "response_prefix",
        "turn_prefix",
        "final_prefix",
    ):
        assert getattr(suite.generation, key) == getattr(preset, key), key
    # the policy chooses on the middle turns: at most a bare "<" is forced, never a tag
    assert suite.env.max_turns >= 4 and suite.generation.turn_prefix in ("", "<")
    assert suite.tasks == get_suite("factbook").tasks  # the same 96 questions
    assert any(e.checkpoint == f"{preset.output_dir}/checkpoint" for e in suite.entries)


@pytest.mark.slow
def test_scripted_rules_solve_every_type_under_the_multihop_protocol() -> None:
    from research_agents.eval.harness import run_suite

    two_turns = run_suite(get_suite("factbook"), Entry("scripted"), progress=False)
    four_turns = run_suite(get_suite("factbook-multihop"), Entry("scripted"), progress=False)
    by_type = next(iter(four_turns.tasks.values())).summary.by_type
    assert len(by_type) == 7
    assert all(v["em"] >= 0.9 for v in by_type.values()), by_type
    assert next(iter(two_turns.tasks.values())).summary.by_type["bridge"]["em"] == 0.0
    assert four_turns.protocol_hash != two_turns.protocol_hash


def test_multihop_table_shows_searches_on_single_and_multi_hop_questions() -> None:
    from research_agents.eval.harness import run_suite

    suite = get_suite("factbook-multihop", size=14)  # 2 questions of each type
    result = run_suite(suite, Entry("scripted"), progress=False)
    by_type = next(iter(result.tasks.values())).summary.by_type
    assert by_type["capital"]["searches"] == 1.0 and by_type["three_hop"]["searches"] == 3.0
    text = render_markdown([result])
    header = next(line for line in text.splitlines() if line.startswith("| # |"))
    assert "searches/q single-hop / multi-hop" in header
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    cells = [c.strip() for c in row.split("|")]
    two_hop = (by_type["bridge"]["searches"] + by_type["comparison"]["searches"] + 3.0) / 3
    assert cells[header.split("|").index(" searches/q single-hop / multi-hop ")] == (
        f"1.00 / {two_hop:.2f}"
    )


def test_result_files_are_checked(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match=r"x\.json: not an eval result"):
        load_results(tmp_path)
    (tmp_path / "s" / "x.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"x.json:1: invalid JSON"):
        load_results(tmp_path)
    assert render_markdown([]).startswith("# Leaderboard")
    with pytest.raises(ValueError, match="unknown key"):
        Entry.from_dict({"agent": "scripted", "modle": "x"}, where="entries.json[0]")


# ------------------------------------------------------------------------------ CLI
USER_AGENT = '''
class AlwaysLima:
    """A user agent: answers Lima to everything."""

    name = "always-lima"

    def begin(self, slot, observation, info):
        pass

    def act(self, observations):
        return {s: "<think>easy</think><answer>\\\\boxed{Lima}</answer>" for s in observations}


def make(env):
    assert env.top_k == 3
    return AlwaysLima()
'''


def test_cli_eval_and_leaderboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "my_agents.py").write_text(USER_AGENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    results = tmp_path / "results"
    code = main(
        [
            "eval",
            "--agent",
            "my_agents:make",
            "--limit",
            "5",
            "--out",
            str(tmp_path / "r.jsonl"),
            "--json",
            str(tmp_path / "r.json"),
            "--save",
            "--results-dir",
            str(results),
            "--label",
            "always Lima",
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "always Lima on suite factbook (protocol " in out and "EM" in out
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 5
    saved = SuiteResult.from_json(
        json.loads((results / "factbook" / "always-lima.json").read_text())
    )
    assert saved.provenance["agent_name"] == "always-lima"
    assert saved.tasks["factbook"].summary.metrics["searches"] == 0.0

    code = main(
        [
            "leaderboard",
            "--suite",
            "factbook",
            "--size",
            "5",
            "--only",
            "scripted",
            "--results-dir",
            str(results),
            "--markdown",
            str(tmp_path / "LB.md"),
            "--no-progress",
        ]
    )
    assert code == 0
    text = (tmp_path / "LB.md").read_text()
    assert "| always Lima |" in text and "| scripted rules, one search per hop (no model) |" in text
    assert text.count("### Protocol") == 1  # both ran the same 5 questions

    assert main(["leaderboard", "--suite", "factbook", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "runs/factbook-smollm2/checkpoint" in listing and "iter-retgen" in listing
    assert main(["leaderboard", "--only", "no-such-row", "--results-dir", str(results)]) == 2
    assert "searchqa leaderboard: --only: no entry of suite 'factbook'" in capsys.readouterr().err
