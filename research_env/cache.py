"""Where research-env keeps built artefacts (corpora, QA sets, indices).

The location is ``$RESEARCH_ENV_CACHE`` when set, else the platform's user cache directory
(``~/.cache/research-env`` on Linux). Every artefact lives in a sub-directory named after a
fingerprint of its inputs, so a change in the source data or the builder produces a new
directory instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import platformdirs

CACHE_ENV_VAR = "RESEARCH_ENV_CACHE"


def cache_dir() -> Path:
    """Return the root cache directory, creating it if needed."""
    root = os.environ.get(CACHE_ENV_VAR)
    path = Path(root) if root else Path(platformdirs.user_cache_dir("research-env"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def fingerprint(parts: Iterable[str | bytes]) -> str:
    """Return a short, stable hex digest of ``parts`` (order matters).

    >>> fingerprint(["a", b"b"]) == fingerprint(["a", "b"])
    True
    >>> len(fingerprint(["x"]))
    16
    """
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (write to a temp file, then rename).

    Two processes building the same artefact never leave a half-written file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
