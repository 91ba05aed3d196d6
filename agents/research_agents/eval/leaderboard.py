"""The leaderboard: stored results rendered as Markdown tables, and a suite's rows run.

Results live in ``<results_dir>/<suite>/<slug>.json`` (:mod:`.results_store`, with the
per-question records beside them in ``<slug>.jsonl``). :func:`render_markdown` ranks, for each
suite, the stored rows **within groups of equal protocol hash** (:mod:`.grouping`): rows
measured under different protocols (other questions, retriever, ``top_k``, template, budgets,
decoding, judge...) are never ranked in one table; each extra group says which protocol fields
differ. :func:`~research_agents.eval.chart.plot_results` draws EM with its 95% interval per
row, one panel per group. :func:`run_leaderboard` plays a suite's entries and stores them.

The rendering reads only deterministic fields (no dates, timings or commits), so regenerating
it from the same results gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_agents.eval.chart import plot_results
from research_agents.eval.grouping import metric, protocol_differences, protocol_groups
from research_agents.eval.harness import SuiteResult
from research_agents.eval.results_store import load_results, result_path, save_result
from research_agents.eval.suites import Entry, Suite
from research_env.data.factbook.qa import MULTI_HOP_TYPES, QUESTION_TYPES, SINGLE_HOP_TYPES

if TYPE_CHECKING:
    from research_agents.eval.judge import LLMJudge

__all__ = [
    "load_results",
    "plot_results",
    "protocol_differences",
    "render_markdown",
    "result_path",
    "run_leaderboard",
    "save_result",
]


_SOURCE = {
    "index": "index",
    "composite": "fused indices",
    "per_question": "per-question contexts",
    "probe": "identified by probe queries",
}
"""How the retriever was identified (``protocol.retriever.source``), as the page says it."""


# ------------------------------------------------------------------------------ markdown
def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _with_ci(r: SuiteResult, name: str) -> str:
    if len(r.tasks) != 1:
        return _fmt(metric(r, name))
    task = next(iter(r.tasks.values()))
    value, ci = task.summary.metrics.get(name), task.summary.ci.get(name)
    if value is None:
        return "–"
    return f"{value:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{value:.3f}"


def _model_cell(r: SuiteResult) -> str:
    p = r.provenance
    checkpoint = p.get("checkpoint")
    if checkpoint:
        step = checkpoint.get("step")
        base = checkpoint.get("preset_model") or "?"
        cell = f"{base} + GRPO" + (f" step {step}" if step is not None else "")
    else:
        cell = str(p.get("model") or "–")
    weights = p.get("weights_sha256")
    return f"{cell} (`{weights[:8]}`)" if weights else cell


def _describe(protocol: Mapping[str, Any]) -> str:
    """One paragraph naming the protocol's settings."""
    tasks = protocol["tasks"]
    first = next(iter(tasks.values()))
    questions = ", ".join(
        f"{t['dataset']['name']} {t['dataset']['split']} ({t['dataset']['n']} q, "
        f"`{t['dataset']['content_hash'][:8]}`)"
        for t in tasks.values()
    )
    r, env, gen = first["retriever"], first["env"], first["generation"]
    decoding = (
        "greedy" if gen["temperature"] == 0 else f"T={gen['temperature']}, top-p {gen['top_p']}"
    )
    prefixes = ", ".join(
        f"{name} `{gen[key]}`"
        for name, key in (
            ("response", "response_prefix"),
            ("turn", "turn_prefix"),
            ("last turn", "final_prefix"),
            ("after an `<answer>` the agent opens", "answer_continuation"),
        )
        if gen.get(key)
    )
    judge = first.get("judge")
    source = _SOURCE.get(r["source"], r["source"])
    parts = [
        f"Questions: {questions}.",
        f"Retrieval: {r['kind']} ({source} `{r['fingerprint'][:8]}`), top-{env['top_k']}.",
        f"Episodes: {env['max_turns']} turns"
        + (", the last must answer" if env["last_turn"] == "answer_only" else "")
        + (
            ", an invalid action ends the episode."
            if env["invalid_action"] == "terminate"
            else ", an invalid action gets a corrective observation."
        ),
        f"Prompt: `{first['template']['name']}`; reward `{first['scoring']['reward']}`.",
        f"Decoding: {decoding}, {gen['max_new_tokens']} tokens per turn, "
        f"{gen['max_response_tokens']} per episode"
        + (f"; forced prefixes (ReSearch agent): {prefixes}" if prefixes else "")
        + f"; seed {first['seed']}.",
    ]
    if judge:
        parts.append(f"Judge: `{judge['model']}` (prompt `{judge['prompt_hash'][:8]}`).")
    return " ".join(parts)


def _type_columns(group: Sequence[SuiteResult]) -> list[str]:
    if any(len(r.tasks) != 1 for r in group):
        return []
    seen = {t for r in group for task in r.tasks.values() for t in task.summary.by_type}
    known = [t for t in QUESTION_TYPES if t in seen]  # others follow in name order
    return known + sorted(seen - set(known))


def _searches_by_hops(r: SuiteResult) -> str:
    """``"single / multi"``: searches per question on single-hop and on multi-hop types."""
    by_type = next(iter(r.tasks.values())).summary.by_type
    cells = []
    for kinds in (SINGLE_HOP_TYPES, MULTI_HOP_TYPES):
        rows = [by_type[t] for t in kinds if t in by_type and "searches" in by_type[t]]
        n = sum(m["n"] for m in rows)
        cells.append(_fmt(sum(m["searches"] * m["n"] for m in rows) / n, 2) if n else "–")
    return " / ".join(cells)


def _table(group: Sequence[SuiteResult]) -> list[str]:
    multi = any(len(r.tasks) != 1 for r in group)
    task_names = list(group[0].tasks) if multi else []
    types = [] if multi else _type_columns(group)
    # where a row has searches per type and the table has both kinds of question
    per_type = [m for r in group for t in r.tasks.values() for m in t.summary.by_type.values()]
    hops = bool(set(types) & set(MULTI_HOP_TYPES)) and any("searches" in m for m in per_type)
    has_judge = any(metric(r, "judge") is not None for r in group)
    header = ["#", "agent", "model", "EM [95% CI]", "F1", "sub-EM"]
    if has_judge:
        header.append("judge")
    header += ["format ok", "answered", "searches/q"]
    if hops:
        header.append("searches/q single-hop / multi-hop")
    header += ["tokens/q", "answer in retrieval"]
    header += [f"EM {t}" for t in task_names] + [f"EM {t}" for t in types]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, r in enumerate(group, start=1):
        cells = [
            str(rank),
            r.label,
            _model_cell(r),
            _with_ci(r, "em"),
            _fmt(metric(r, "f1")),
            _fmt(metric(r, "sub_em")),
        ]
        if has_judge:
            cells.append(_fmt(metric(r, "judge")))
        cells += [
            _fmt(metric(r, "format_ok"), 2),
            _fmt(metric(r, "answered"), 2),
            _fmt(metric(r, "searches"), 2),
            *([_searches_by_hops(r)] if hops else []),
            _fmt(metric(r, "tokens"), 1),
            _fmt(metric(r, "answer_in_retrieval"), 2),
        ]
        for name in task_names:
            task = r.tasks.get(name)
            cells.append(_fmt(task.summary.metrics.get("em") if task else None))
        if types:
            by_type = next(iter(r.tasks.values())).summary.by_type
            cells += [_fmt(by_type[t]["em"], 2) if t in by_type else "–" for t in types]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def render_markdown(
    results: Iterable[SuiteResult],
    *,
    descriptions: Mapping[str, str] | None = None,
    charts: Mapping[str, str] | None = None,
    command: str = "searchqa leaderboard --suite SUITE",
) -> str:
    """The leaderboard page: per suite, one ranked table per protocol group.

    Args:
        results: Stored results of any suites.
        descriptions: Suite -> one-line description (for headings).
        charts: Suite -> relative path of its PNG chart (embedded when given).
        command: How the page is regenerated (printed at the top).
    """
    by_suite: dict[str, list[SuiteResult]] = {}
    for r in results:
        by_suite.setdefault(r.suite, []).append(r)
    out = [
        "# Leaderboard",
        "",
        f"Generated by `{command}` from the JSON results in `benchmarks/results/`; do not edit "
        "by hand. Each row is one agent, played once per question with greedy decoding. "
        "EM carries a 95% bootstrap interval over questions. Rows are ranked only against rows "
        "of the same *protocol* (same questions, retrieval index and settings, template, "
        "budgets, decoding, scoring); see [docs/leaderboard.md](../docs/leaderboard.md) for "
        "what a protocol covers and how to add an agent.",
    ]
    for suite in sorted(by_suite):
        groups = protocol_groups(by_suite[suite])
        heading = f"## Suite `{suite}`"
        if descriptions and suite in descriptions:
            heading += f": {descriptions[suite]}"
        out += ["", heading]
        if charts and suite in charts:
            out += ["", f"![EM per agent, suite {suite}]({charts[suite]})"]
        if len(groups) > 1:
            out += [
                "",
                f"The rows below were measured under {len(groups)} different protocols. Rows "
                "in different groups are **not comparable** and are ranked separately.",
            ]
        reference = groups[0][0].protocol
        for i, group in enumerate(groups):
            head = group[0]
            out += ["", f"### Protocol `{head.protocol_hash}`", "", _describe(head.protocol)]
            if i > 0:
                diff = protocol_differences(reference, head.protocol)
                shown = ", ".join(f"`{d}`" for d in diff[:8]) + (" …" if len(diff) > 8 else "")
                out += [
                    "",
                    f"Not comparable with protocol `{groups[0][0].protocol_hash}`: differs in "
                    f"{shown}.",
                ]
            out += ["", *_table(group)]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ running
def run_leaderboard(
    suite: Suite,
    *,
    entries: Sequence[Entry] | None = None,
    results_dir: str | Path = "benchmarks/results",
    markdown: str | Path | None = "benchmarks/LEADERBOARD.md",
    batch_size: int = 16,
    judge: LLMJudge | None = None,
    skip_existing: bool = False,
    render_only: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``suite``'s entries, store their results, and re-render the leaderboard.

    An entry whose checkpoint does not exist is skipped with a message; its stored row (if
    any) is kept and rendered.

    Args:
        suite: The suite.
        entries: Rows to run (default: ``suite.entries``).
        results_dir: Where results are stored (``<results_dir>/<suite>/<slug>.json``).
        markdown: The page to write (with a PNG per suite beside it), or ``None``.
        batch_size: Episodes in flight at once.
        judge: An LLM judge (off by default).
        skip_existing: Skip entries whose stored result has this suite's protocol hash.
        render_only: Run nothing; only re-render from stored results.
        progress: Show progress bars.
        log: Where messages go.

    Returns:
        ``{"ran": [paths], "skipped": {label: reason}, "markdown": path, "charts": [paths]}``.
    """
    from research_agents.eval.agents import MissingCheckpointError
    from research_agents.eval.harness import run_suite, suite_protocol

    rows = list(suite.entries if entries is None else entries)
    ran: list[str] = []
    skipped: dict[str, str] = {}
    if not render_only:
        expected = suite_protocol(suite, judge)[1] if skip_existing else None
        for entry in rows:
            path = result_path(results_dir, suite.name, entry.slug())
            if expected is not None and path.is_file():
                previous = SuiteResult.from_json(json.loads(path.read_text()), where=str(path))
                if previous.protocol_hash == expected:
                    skipped[entry.display()] = f"stored result with protocol {expected} exists"
                    log(f"skip {entry.display()}: {skipped[entry.display()]}")
                    continue
            try:
                result = run_suite(
                    suite, entry, batch_size=batch_size, judge=judge, progress=progress
                )
            except MissingCheckpointError as e:
                kept = " (its stored row is kept)" if path.is_file() else ""
                skipped[entry.display()] = f"{e}{kept}"
                log(f"skip {entry.display()}: {e}{kept}")
                continue
            saved = save_result(result, results_dir)
            ran.append(str(saved))
            em = metric(result, "em")
            log(f"{entry.display()}: EM {_fmt(em)} -> {saved} ({result.timing['seconds']} s)")
    out: dict[str, Any] = {"ran": ran, "skipped": skipped, "markdown": None, "charts": []}
    if markdown is not None:
        page = Path(markdown)
        stored = load_results(results_dir)
        by_suite: dict[str, list[SuiteResult]] = {}
        for r in stored:
            by_suite.setdefault(r.suite, []).append(r)
        charts: dict[str, str] = {}
        for name, suite_rows in sorted(by_suite.items()):
            chart = page.parent / f"leaderboard_{name}.png"
            try:
                plot_results(suite_rows, chart, title=f"suite {name}")
            except ModuleNotFoundError as e:  # the Markdown needs no matplotlib
                log(f"no charts ({e}; pip install matplotlib): writing the Markdown alone")
                break
            charts[name] = chart.name
            out["charts"].append(str(chart))
        descriptions = {r.suite: r.description for r in stored if r.description}
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(
            render_markdown(
                stored,
                descriptions=descriptions,
                charts=charts,
                command="searchqa leaderboard --suite " + " / ".join(sorted(by_suite) or ["?"]),
            ),
            encoding="utf-8",
        )
        out["markdown"] = str(page)
        log(f"leaderboard: {page} ({len(stored)} rows)")
    return out
