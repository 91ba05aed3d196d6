"""Agreement of our protocols with the papers' own reward code, measured side by side.

The papers' code is not part of research-env: point this script at your own checkout.

    python benchmarks/fidelity.py --research-file ReCall/src/verl/utils/reward_score/re_search.py
    python benchmarks/fidelity.py --research-file ... --write-dir tests/fixtures

It generates varied responses (``tests/fidelity_cases.py``; ``--seed``/``--n``), scores each
with ReSearch's ``compute_score`` and with ``research_env.protocols.score_response``, and
prints the agreement overall, on well-formed responses, and the disagreements. ``--write-dir``
stores the cases with ReSearch's scores as the fixture the tests check against.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fidelity_cases import (  # noqa: E402
    research_cases,
    searchr1_cases,
    searchr1_format_cases,
)

from research_env.protocols import research, score_response, searchr1  # noqa: E402


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("paper_reward", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _paper_research(paper: ModuleType, case: dict[str, Any]) -> float:
    tok = SimpleNamespace(eos_token=case["eos_text"])
    solution = case["prompt"] + case["response"] + (case["eos_text"] if case["eos"] else "")
    value = paper.compute_score(tok, solution, case["golden_answers"])
    return float(value[0] if isinstance(value, tuple) else value)


def _paper_searchr1(paper: ModuleType, case: dict[str, Any]) -> float:
    solution = case["prompt"] + case["response"]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints 1 in 64 cases at random
        return float(paper.compute_score_em(solution, {"target": case["golden_answers"]}))


def _paper_searchr1_format(paper: ModuleType, case: dict[str, Any]) -> float:
    solution = case["prompt"] + case["response"]
    with contextlib.redirect_stdout(io.StringIO()):
        return float(
            paper.compute_score_em(
                solution,
                {"target": case["golden_answers"]},
                structure_format_score=0.2,
                final_format_score=0.1,
                retrieval_score=0.0,
            )
        )


def compare(protocol: str, paper_file: Path, seed: int, n: int, write: Path | None) -> None:
    """Score ``n`` cases with the paper's code and ours; print the agreement."""
    paper = _load(paper_file)
    make_cases, paper_score = {
        "research": (research_cases, _paper_research),
        "searchr1": (searchr1_cases, _paper_searchr1),
        "searchr1_format": (searchr1_format_cases, _paper_searchr1_format),
    }[protocol]
    cases = make_cases(seed, n)
    agree = well = well_agree = 0
    misses = []
    for case in cases:
        theirs = paper_score(paper, case)
        ours = score_response(
            protocol,
            case["response"],
            case["golden_answers"],
            eos=case["eos"],
            eos_text=case["eos_text"],
            prompt=case["prompt"],
        )
        case["expected"] = theirs
        ok = abs(ours - theirs) < 1e-12
        agree += ok
        formed = (
            searchr1.valid_sequence(case["prompt"] + case["response"])[0]
            if protocol.startswith("searchr1")
            else research.check_format(case["response"])[0]
        )
        well += formed
        well_agree += formed and ok
        if not ok:
            misses.append((case["id"], theirs, ours, case["response"][:160]))
    print(f"[{protocol}] cases {len(cases)}  agree {agree / len(cases):.4f} ({agree}/{len(cases)})")
    print(f"[{protocol}] well-formed {well}: agree {well_agree}/{well}")
    print(f"[{protocol}] paper reward > 0 on {sum(c['expected'] > 0 for c in cases)} cases")
    for m in misses[:20]:
        print("MISS", m)
    if write:
        with write.open("w", encoding="utf-8") as f:
            for case in cases:
                f.write(json.dumps(case, ensure_ascii=False) + "\n")
        print(f"wrote {write}")


def main() -> None:
    """Run the comparisons asked for."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--research-file", type=Path, help="ReSearch's re_search.py")
    ap.add_argument("--searchr1-file", type=Path, help="Search-R1's reward_score/qa_em.py")
    ap.add_argument(
        "--searchr1-format-file", type=Path, help="Search-R1's reward_score/qa_em_format.py"
    )
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--write-dir", type=Path, help="store fidelity_<protocol>.jsonl here")
    args = ap.parse_args()
    papers = (
        ("research", args.research_file),
        ("searchr1", args.searchr1_file),
        ("searchr1_format", args.searchr1_format_file),
    )
    if not any(path for _, path in papers):
        ap.error("give at least one of --research-file, --searchr1-file, --searchr1-format-file")
    for protocol, path in papers:
        if path is not None:
            out = args.write_dir / f"fidelity_{protocol}.jsonl" if args.write_dir else None
            compare(protocol, path, args.seed, args.n, out)


if __name__ == "__main__":
    main()
