"""Store results as JSON, and render them as a Markdown leaderboard and a bar chart.

Results live in ``<results_dir>/<suite>/<slug>.json`` (with the per-question records beside
them in ``<slug>.jsonl``). :func:`render_markdown` ranks, for each suite, the stored rows
**within groups of equal protocol hash**: rows measured under different protocols (other
questions, retriever, ``top_k``, template, budgets, decoding, judge...) are never ranked in one
table; each extra group says which protocol fields differ. :func:`plot_results` draws EM with
its 95% interval per row, one panel per group.

The rendering reads only deterministic fields (no dates, timings or commits), so regenerating
it from the same results gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_agents.eval.harness import SuiteResult
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


def result_path(results_dir: str | Path, suite: str, slug: str) -> Path:
    """Where the result of row ``slug`` of ``suite`` is stored."""
    return Path(results_dir) / suite / f"{slug}.json"


def save_result(result: SuiteResult, results_dir: str | Path) -> Path:
    """Write ``result`` (JSON) and its records (JSONL) under ``results_dir``; return the JSON."""
    path = result_path(results_dir, result.suite, result.slug)
    result.write(path)
    if any(t.records for t in result.tasks.values()):
        result.write_records(path.with_suffix(".jsonl"))
    return path


def load_results(results_dir: str | Path, suite: str | None = None) -> list[SuiteResult]:
    """Every stored result (of ``suite``, or of all suites), in path order.

    Raises:
        ValueError: If a JSON file there is not a result (naming the file).
    """
    root = Path(results_dir)
    folders = [root / suite] if suite else sorted(p for p in root.glob("*") if p.is_dir())
    out: list[SuiteResult] = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
            out.append(SuiteResult.from_json(data, where=str(path)))
    return out


# ------------------------------------------------------------------------------ grouping
def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def protocol_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The dotted names of the protocol fields where ``a`` and ``b`` differ.

    Examples:
        >>> protocol_differences({"env": {"top_k": 3, "max_turns": 2}},
        ...                      {"env": {"top_k": 5, "max_turns": 2}})
        ['env.top_k']
    """
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def _groups(results: Sequence[SuiteResult]) -> list[list[SuiteResult]]:
    """Rows grouped by protocol hash; the biggest group first, then by hash."""
    by_hash: dict[str, list[SuiteResult]] = {}
    for r in results:
        by_hash.setdefault(r.protocol_hash, []).append(r)
    groups = sorted(by_hash.values(), key=lambda g: (-len(g), g[0].protocol_hash))
    return [_ranked(g) for g in groups]


def _metric(r: SuiteResult, name: str) -> float | None:
    values = [t.summary.metrics.get(name) for t in r.tasks.values()]
    if not values or any(v is None for v in values):
        return None
    return sum(float(v) for v in values if v is not None) / len(values)


def _ranked(group: list[SuiteResult]) -> list[SuiteResult]:
    def key(r: SuiteResult) -> tuple[float, float, str]:
        return (-(_metric(r, "em") or 0.0), -(_metric(r, "f1") or 0.0), r.label)

    return sorted(group, key=key)


# ------------------------------------------------------------------------------ markdown
def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _with_ci(r: SuiteResult, name: str) -> str:
    if len(r.tasks) != 1:
        return _fmt(_metric(r, name))
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
        )
        if gen[key]
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
    has_judge = any(_metric(r, "judge") is not None for r in group)
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
            _fmt(_metric(r, "f1")),
            _fmt(_metric(r, "sub_em")),
        ]
        if has_judge:
            cells.append(_fmt(_metric(r, "judge")))
        cells += [
            _fmt(_metric(r, "format_ok"), 2),
            _fmt(_metric(r, "answered"), 2),
            _fmt(_metric(r, "searches"), 2),
            *([_searches_by_hops(r)] if hops else []),
            _fmt(_metric(r, "tokens"), 1),
            _fmt(_metric(r, "answer_in_retrieval"), 2),
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
        groups = _groups(by_suite[suite])
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


# ------------------------------------------------------------------------------ chart
def plot_results(results: Sequence[SuiteResult], path: str | Path, title: str = "") -> Path:
    """Bar chart of EM (with 95% intervals) and F1 per row, one panel per protocol group.

    Args:
        results: Results of one suite.
        path: Where the PNG goes.
        title: Figure title.

    Raises:
        ValueError: If there are no results.
    """
    if not results:
        raise ValueError("expected at least one result to plot, got 0")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(results)
    heights = [max(len(g), 1) * 0.45 + 1.0 for g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(8, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, group in zip(axes[:, 0], groups):
        labels = [r.label for r in group][::-1]
        em = [_metric(r, "em") or 0.0 for r in group][::-1]
        f1 = [_metric(r, "f1") or 0.0 for r in group][::-1]
        lows, highs = [], []
        for r, value in zip(group[::-1], em):
            ci = next(iter(r.tasks.values())).summary.ci.get("em") if len(r.tasks) == 1 else None
            lows.append(value - ci[0] if ci else 0.0)
            highs.append(ci[1] - value if ci else 0.0)
        y = list(range(len(group)))
        ax.barh(
            [v + 0.2 for v in y],
            em,
            height=0.4,
            xerr=[lows, highs],
            capsize=3,
            label="EM (95% CI)",
            color="#3b75af",
        )
        ax.barh([v - 0.2 for v in y], f1, height=0.4, label="F1", color="#ef8636")
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(f"protocol {group[0].protocol_hash}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("score")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out


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
            em = _metric(result, "em")
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
