"""What checking every line costs JsonlCorpus's first scan of a corpus file.

Times, side by side in one run on the same synthetic file, an offsets-only scan of the bytes
(what ``JsonlCorpus`` did before it checked lines) and ``JsonlCorpus(path, cache=False)``,
which also parses every line, checks it as ``load_corpus`` does and rejects duplicate ids.
Later constructions read the cached offsets and pay neither.

Run: ``.venv/bin/python benchmarks/corpus_scan.py [--passages 200000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path


def _offsets_only(path: Path) -> int:
    """Offsets of the non-blank lines and a content hash: the unchecked scan."""
    import hashlib

    starts, position, digest = [], 0, hashlib.sha256()
    with path.open("rb") as f:
        for line in f:
            if not line.isspace():
                starts.append(position)
            digest.update(line)
            position += len(line)
    return len(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from research_env.data.corpus import JsonlCorpus

    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        with path.open("w") as out:
            for i in range(args.passages):
                text = " ".join(rng.choice(words) for _ in range(100))
                out.write(json.dumps({"id": str(i), "contents": f'"Title {i}"\n{text}'}) + "\n")
        size = path.stat().st_size / 1e6
        print(f"{args.passages:,} passages, {size:.0f} MB (FlashRAG contents layout)")
        for _ in range(args.repeats):
            start = time.perf_counter()
            n = _offsets_only(path)
            unchecked = time.perf_counter() - start
            start = time.perf_counter()
            assert len(JsonlCorpus(path, cache=False)) == n
            checked = time.perf_counter() - start
            print(
                f"offsets only {unchecked:.2f} s   checked scan {checked:.2f} s   "
                f"({checked / unchecked:.1f}x, {1e6 * checked / n:.1f} us per passage)"
            )


if __name__ == "__main__":
    main()
