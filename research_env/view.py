"""A static HTML page of episodes: ``searchqa view RUN_OR_RECORDS``.

Reads a training run's ``samples.jsonl`` (a few trajectories per step, with the env's action /
observation log, written by the GRPO trainer) or per-question eval records (``searchqa eval
--out records.jsonl``), and writes one self-contained HTML file: no server, no network, no
external script. Each episode shows the question, gold answers, prediction, reward and its
components, and the transcript with ``<think>`` / ``<search>`` / result / ``<answer>`` spans
coloured and every retrieved passage as its own box. Filters (question type, correct or wrong,
step range, text) run in the page. Questions seen more than once get a before/after pair side
by side: the earliest and latest step of a run, or, given several sources (``searchqa view
zero_shot.jsonl trained.jsonl``), the first and the last source's episode of that question.

Filters can be preset in the address: ``view.html#type=capital&correct=0&min=3&q=Lima``
(the page keeps the address in step with the filters, so a view can be shared).

Needs only the standard library (no torch): an env-only install can view a run.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SAMPLES = "samples.jsonl"
"""The file a training run keeps its sampled trajectories in."""

_SPAN = re.compile(r"<(think|search|answer|result|information)>(.*?)(?:</\1>|$)", re.DOTALL)
_DOC = re.compile(r"Doc (\d+) \(Title: (.*?)\)\s*(.*?)(?=\n\s*Doc \d+ \(Title: |\Z)", re.DOTALL)


class ViewError(ValueError):
    """The input cannot be shown (missing, empty or malformed), with ``file:line`` where known."""


def find_records(source: str | Path) -> Path:
    """The JSONL file behind ``source``: a run folder (its ``samples.jsonl``) or a file.

    Raises:
        ViewError: If there is nothing to read.
    """
    path = Path(source)
    if path.is_dir():
        samples = path / SAMPLES
        if not samples.is_file():
            raise ViewError(
                f"{path}: no {SAMPLES} (training writes one when samples_every > 0; "
                "or pass an eval records file from `searchqa eval --out FILE.jsonl`)"
            )
        return samples
    if not path.is_file():
        raise ViewError(f"no run folder or records file at {path}")
    return path


def load_episodes(path: str | Path) -> list[dict[str, Any]]:
    """Read episodes from a ``samples.jsonl`` or eval records file, one JSON object per line.

    A record is normalised to the sample layout: ``log`` from ``actions`` when there is no
    log, ``step`` 0 when unknown, ``correct`` from EM.

    Raises:
        ViewError: On a malformed line (``file:line``) or an empty file.
    """
    path = Path(path)
    episodes: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ViewError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or "question" not in row:
                raise ViewError(f"{path}:{lineno}: expected an episode object with a 'question'")
            episodes.append(_normalise(row))
    if not episodes:
        raise ViewError(f"{path}: no episodes")
    return episodes


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    ep = dict(row)
    if not ep.get("log"):
        ep["log"] = [["action", a] for a in ep.get("actions", [])]
        ep["observations_recorded"] = False
    else:
        ep["observations_recorded"] = True
    components = dict(ep.get("reward_components") or {})
    for key in ("em", "f1", "sub_em", "format_ok", "answer_in_retrieval"):
        if key not in components and key in ep:
            components[key] = ep[key]
    ep["reward_components"] = components
    ep["step"] = int(ep.get("step") or 0)
    ep["question_type"] = ep.get("question_type") or "untyped"
    ep["question_id"] = str(ep.get("question_id") or ep["question"])
    ep["correct"] = float(components.get("em", 0.0) or 0.0) >= 1.0
    return ep


# ------------------------------------------------------------------ rendering
def _passages(text: str) -> str:
    docs = _DOC.findall(text)
    if not docs:
        return f'<div class="passage">{html.escape(text.strip())}</div>'
    return "".join(
        f'<div class="passage"><span class="doc">Doc {n}</span> '
        f'<span class="title">{html.escape(title)}</span> {html.escape(body.strip())}</div>'
        for n, title, body in docs
    )


def render_text(text: str, role: str) -> str:
    """One action or observation as HTML, tag spans coloured, passages boxed."""
    out: list[str] = []
    pos = 0
    for m in _SPAN.finditer(text):
        if m.start() > pos:
            out.append(f'<span class="plain">{html.escape(text[pos : m.start()])}</span>')
        tag, body = m.group(1), m.group(2)
        if tag in ("result", "information"):
            out.append(f'<div class="seg result"><b>&lt;{tag}&gt;</b>{_passages(body)}</div>')
        else:
            out.append(f'<span class="seg {tag}"><b>&lt;{tag}&gt;</b>{html.escape(body)}</span>')
        pos = m.end()
    if pos < len(text):
        rest = text[pos:]
        if role == "observation":
            out.append(f'<div class="seg result">{_passages(rest)}</div>')
        else:
            out.append(f'<span class="plain">{html.escape(rest)}</span>')
    return f'<div class="turn {role}">{"".join(out)}</div>'


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def render_episode(ep: dict[str, Any]) -> str:
    """One episode card (its filter keys as ``data-`` attributes)."""
    verdict = "correct" if ep["correct"] else "wrong"
    comps = "".join(
        f"<span>{html.escape(k)} <b>{_fmt(v)}</b></span>"
        for k, v in ep["reward_components"].items()
    )
    turns = "".join(render_text(str(text), str(role)) for role, text in ep["log"])
    note = (
        ""
        if ep["observations_recorded"]
        else '<p class="note">observations were not recorded in this file (actions only)</p>'
    )
    meta = [
        html.escape(_when(ep)),
        html.escape(ep["question_type"]),
        f"end: {html.escape(str(ep.get('end_reason')))}",
        f"searches {ep.get('searches', '?')}",
    ]
    if "advantage" in ep:
        meta.append(f"advantage {float(ep['advantage']):+.2f}")
    gold = ", ".join(html.escape(str(g)) for g in ep.get("golden_answers", []))
    return (
        f'<article class="episode {verdict}" data-type="{html.escape(ep["question_type"])}" '
        f'data-correct="{int(ep["correct"])}" data-step="{ep["step"]}" '
        f'data-qid="{html.escape(ep["question_id"])}">'
        f'<header><span class="badge {verdict}">{verdict}</span> '
        f'<span class="q">{html.escape(ep["question"])}</span></header>'
        f'<p class="meta">{" · ".join(meta)}</p>'
        f'<p class="answers">gold: <b>{gold}</b> · predicted: '
        f"<b>{html.escape(str(ep.get('prediction') or '—'))}</b> · reward "
        f"<b>{float(ep.get('reward', 0.0)):.3f}</b></p>"
        f'<div class="components">{comps}</div>{note}'
        f'<div class="transcript">{turns}</div></article>'
    )


def _when(ep: dict[str, Any]) -> str:
    """Where an episode comes from: its step, its source, or both."""
    if not ep["step"]:  # eval records have no step
        return str(ep.get("source", "records"))
    return f"{ep['source']} step {ep['step']}" if ep.get("source_index") else f"step {ep['step']}"


def before_after(
    episodes: Sequence[dict[str, Any]],
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """For each question seen more than once: its (earliest, latest) episode.

    Order is (source index, step): the first source before the last, then step within one.
    """
    by_q: dict[str, list[dict[str, Any]]] = {}
    for ep in episodes:
        by_q.setdefault(ep["question_id"], []).append(ep)
    pairs = []
    for eps in by_q.values():
        ordered = sorted(eps, key=lambda e: (e.get("source_index", 0), e["step"]))
        first, last = ordered[0], ordered[-1]
        if (last.get("source_index", 0), last["step"]) > (
            first.get("source_index", 0),
            first["step"],
        ):
            pairs.append((first, last))
    return sorted(pairs, key=lambda p: (p[0]["step"], p[0]["question_id"]))


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header.top{background:#1f2937;color:#fff;padding:12px 20px}
header.top h1{font-size:18px;margin:0}
#filters{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 20px;
 display:flex;gap:14px;flex-wrap:wrap;align-items:center;z-index:2}
main{padding:12px 20px}
.episode{background:#fff;border:1px solid #ddd;border-left:6px solid #999;border-radius:6px;
 margin:10px 0;padding:10px 14px}
.episode.correct{border-left-color:#16a34a}.episode.wrong{border-left-color:#dc2626}
.badge{color:#fff;border-radius:4px;padding:1px 6px;font-size:12px}
.badge.correct{background:#16a34a}.badge.wrong{background:#dc2626}
.q{font-weight:600}.meta,.answers{margin:4px 0;color:#444}
.components{display:flex;flex-wrap:wrap;gap:4px;font-size:12px;margin:4px 0}
.components span{border:1px solid #e5e5e5;border-radius:3px;padding:0 5px;background:#fafafa}
.turn{margin:6px 0;white-space:pre-wrap}
.seg{border-radius:4px;padding:1px 3px}
.think{background:#ececec;color:#555}
.search{background:#dbeafe;color:#1e3a8a}
.answer{background:#dcfce7;color:#14532d;font-weight:600}
.result{display:block;background:#fef3c7;border:1px solid #f59e0b;padding:4px 6px;margin:4px 0}
.passage{background:#fffbeb;border:1px solid #fcd34d;border-radius:4px;margin:3px 0;padding:3px 6px}
.doc{font-weight:700;color:#92400e}.title{font-style:italic;color:#92400e}
.note{color:#92400e;font-size:12px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.pair h3{grid-column:1/3;margin:14px 0 0;font-size:14px}
section h2{font-size:16px;border-bottom:1px solid #ccc}
.hidden{display:none}
"""

_JS = """
const ids={type:'f-type',correct:'f-correct',min:'f-min',max:'f-max',q:'f-text'};
new URLSearchParams(location.hash.slice(1)).forEach((v,k)=>{
  if(ids[k]) document.getElementById(ids[k]).value=v;});
function apply(){
  const t=document.getElementById('f-type').value, c=document.getElementById('f-correct').value;
  const lo=+document.getElementById('f-min').value, hi=+document.getElementById('f-max').value;
  const q=document.getElementById('f-text').value.toLowerCase();
  let shown=0;
  document.querySelectorAll('#episodes .episode').forEach(e=>{
    const s=+e.dataset.step;
    const ok=(t===''||e.dataset.type===t)&&(c===''||e.dataset.correct===c)&&s>=lo&&s<=hi
      &&(q===''||e.textContent.toLowerCase().includes(q));
    e.classList.toggle('hidden',!ok); if(ok) shown++;
  });
  document.querySelectorAll('#pairs .pair').forEach(p=>{
    const ok=(t===''||p.dataset.type===t)&&(q===''||p.textContent.toLowerCase().includes(q));
    p.classList.toggle('hidden',!ok);
  });
  document.getElementById('count').textContent=shown;
  const h=new URLSearchParams();
  for(const [k,id] of Object.entries(ids)){const v=document.getElementById(id).value;
    if(v!=='') h.set(k,v);}
  history.replaceState(null,'','#'+h.toString());
}
document.querySelectorAll('#filters select,#filters input').forEach(
  el=>el.addEventListener('input',apply));
apply();
"""


def render_page(episodes: Sequence[dict[str, Any]], title: str) -> str:
    """The whole HTML page for ``episodes``."""
    types = sorted({ep["question_type"] for ep in episodes})
    steps = sorted({ep["step"] for ep in episodes})
    n_correct = sum(ep["correct"] for ep in episodes)
    options = "".join(f'<option value="{html.escape(t)}">{html.escape(t)}</option>' for t in types)
    step_opts = "".join(f'<option value="{s}">{s}</option>' for s in steps)
    last = f'<option value="{steps[-1]}" selected>{steps[-1]}</option>'
    cards = "".join(render_episode(ep) for ep in sorted(episodes, key=lambda e: e["step"]))
    pairs = before_after(episodes)
    pair_html = "".join(
        f'<div class="pair" data-type="{html.escape(a["question_type"])}">'
        f"<h3>{html.escape(a['question'])}: {html.escape(_when(a))} → "
        f"{html.escape(_when(b))}</h3>"
        f"{render_episode(a)}{render_episode(b)}</div>"
        for a, b in pairs
    )
    pair_section = (
        f'<section id="pairs"><h2>Before / after ({len(pairs)} questions seen more than '
        f"once)</h2>{pair_html}</section>"
        if pairs
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<header class="top"><h1>{html.escape(title)}</h1>
<div>{len(episodes)} episodes · {n_correct} correct (EM) · {_span(episodes)} ·
{len(types)} question types</div></header>
<div id="filters">
<label>type <select id="f-type"><option value="">all</option>{options}</select></label>
<label>result <select id="f-correct"><option value="">all</option>
<option value="1">correct</option><option value="0">wrong</option></select></label>
<label>steps <select id="f-min">{step_opts}</select> to
<select id="f-max">{step_opts.replace(f'<option value="{steps[-1]}">{steps[-1]}</option>', last)}
</select></label>
<label>text <input id="f-text" type="search" placeholder="question, query, passage"></label>
<span><b id="count">{len(episodes)}</b> shown</span></div>
<main>{pair_section}<section id="episodes"><h2>Episodes</h2>{cards}</section></main>
<script>{_JS}</script></body></html>
"""


def load_sources(sources: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The episodes of every source, each tagged with ``source`` (its name) and its index."""
    episodes: list[dict[str, Any]] = []
    for index, source in enumerate(sources):
        records = find_records(source)
        name = Path(source).name if Path(source).is_dir() else records.stem
        for ep in load_episodes(records):
            episodes.append({**ep, "source": name, "source_index": index})
    return episodes


def write_view(
    sources: str | Path | Sequence[str | Path],
    out: str | Path | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Write the HTML page of ``sources`` (run folders or records files); returns its path.

    Args:
        sources: A training run folder (reads ``samples.jsonl``) or a JSONL file of samples or
            eval records; or several, compared before/after in the order given.
        out: The page to write (default: ``view.html`` beside the first source's records).
        title: The page's title (default: the sources' names).

    Raises:
        ViewError: If a source has nothing to show.
    """
    listed = [sources] if isinstance(sources, str | Path) else list(sources)
    if not listed:
        raise ViewError("no source given")
    episodes = load_sources(listed)
    first = find_records(listed[0])
    page = Path(out) if out is not None else first.with_name("view.html")
    page.parent.mkdir(parents=True, exist_ok=True)
    name = title or " vs ".join(dict.fromkeys(ep["source"] for ep in episodes))
    page.write_text(render_page(episodes, name), encoding="utf-8")
    return page


def _span(episodes: Sequence[dict[str, Any]]) -> str:
    """``steps 1-60`` for training samples, the source names for eval records (no steps)."""
    steps = sorted({e["step"] for e in episodes})
    if steps != [0]:
        return f"steps {steps[0]}-{steps[-1]}"
    names = list(dict.fromkeys(str(e.get("source", "records")) for e in episodes))
    return ("source " if len(names) == 1 else "sources ") + ", ".join(names)


def describe(episodes: Iterable[dict[str, Any]]) -> str:
    """One line: episodes, correct, steps (or sources), types."""
    eps = list(episodes)
    return (
        f"{len(eps)} episodes, {sum(e['correct'] for e in eps)} correct, "
        f"{_span(eps)}, {len({e['question_type'] for e in eps})} question types"
    )
