"""Faiss index I/O for dense retrieval: build an inner-product index, write it, read it back.

:func:`_build_index` builds a flat, HNSW or IVF index over L2-normalised embeddings,
:func:`_write_index` saves it atomically, and :func:`read_faiss_index` opens an index file
(one built here, or FlashRAG's ``e5_Flat.index``) memory-mapped. faiss is imported when an index
is first built or read, never at import time.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from research_env.retrieval.encoder import Embeddings

if TYPE_CHECKING:
    from research_env.retrieval.dense import DenseConfig, IndexType

_ADD_CHUNK = 65536


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise ImportError(
            "dense retrieval needs faiss: pip install 'research-env[dense]' (faiss-cpu)"
        ) from e
    return faiss


def _default_nlist(n: int) -> int:
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _build_index(embeddings: Embeddings, config: DenseConfig) -> Any:
    """Build a faiss index of ``config.index_type`` over ``embeddings`` (inner product)."""
    faiss = _import_faiss()
    n, dim = embeddings.shape
    if config.index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif config.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
    else:
        nlist = config.ivf_nlist or _default_nlist(n)
        if nlist > n:
            raise ValueError(f"expected ivf_nlist <= number of passages ({n}), got {nlist}")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(config.seed)
        size = min(n, max(config.ivf_train_size, nlist))
        sample = np.sort(rng.choice(n, size=size, replace=False))
        index.train(np.ascontiguousarray(embeddings[sample]))
    for start in range(0, n, _ADD_CHUNK):
        index.add(np.ascontiguousarray(embeddings[start : start + _ADD_CHUNK]))
    return index


def _write_index(index: Any, path: Path) -> None:
    faiss = _import_faiss()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_faiss_index(path: str | Path, *, mmap: bool = True) -> Any:
    """Open a faiss index file, memory-mapped where faiss supports it for the index type.

    Flat and HNSW indices map their vectors (``IO_FLAG_MMAP_IFC``), IVF indices their inverted
    lists (``IO_FLAG_MMAP``): the vectors stay in the page cache instead of being copied into
    process memory. Other index types are read into memory.

    Args:
        path: The index file (e.g. FlashRAG's ``e5_Flat.index``).
        mmap: ``False`` reads the whole index into memory.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If faiss cannot read it.
    """
    faiss = _import_faiss()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"faiss index file {str(path)!r} does not exist")
    flags = [faiss.IO_FLAG_MMAP_IFC, faiss.IO_FLAG_MMAP] if mmap else []
    for flag in [*flags, 0]:
        try:
            return faiss.read_index(str(path), flag)
        except RuntimeError as e:
            error = e
    raise ValueError(f"faiss cannot read {str(path)!r}: {error}")


def _index_type_of(index: Any) -> IndexType:
    if hasattr(index, "hnsw"):
        return "hnsw"
    if hasattr(index, "nprobe"):
        return "ivf"
    return "flat"
