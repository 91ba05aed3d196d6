import os
from pathlib import Path

# Built artefacts (Factbook world, BM25 indices) are cached across test runs in the repo's .cache
# unless the caller chose a location. Tests of the cache itself use their own tmp directories.
os.environ.setdefault(
    "RESEARCH_ENV_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "research-env")
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
