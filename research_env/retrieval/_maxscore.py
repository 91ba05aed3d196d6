"""Exact top-k BM25 over a bm25s eager index, compiled with numba (MaxScore pruning).

bm25s stores, for every vocabulary term, its posting list: the documents that contain it (sorted
by document number) with the term's precomputed BM25 contribution (a CSC matrix: ``data``,
``indices``, ``indptr``). A query's score for a document is the sum of its terms' contributions.

Scoring every posting of every query term (what bm25s's own retrieve does) costs one memory
update per posting, and the frequent terms of a query have the longest posting lists but add
the least to any score (their idf is small). MaxScore (Turtle & Flood, 1995; the pruning Lucene
uses) skips most of that work without changing the result:

1. Each term's largest contribution ``max_t`` bounds what it can add to any document.
   Terms are processed by decreasing bound.
2. Term-at-a-time accumulation of whole posting lists ("essential" terms) stops as soon as the
   k-th best partial score already exceeds the sum of the bounds of the terms left: a document
   none of the processed terms matched cannot reach the top k any more.
3. The remaining terms only update the candidate documents, by binary search in their posting
   lists (or one scan when that is cheaper), dropping candidates whose partial score plus the
   bounds left falls below the k-th best.

Scores are accumulated in float32 as bm25s does; the thresholds keep a relative safety margin of
1e-4 so rounding can never prune a document that belongs to the top k. The few contenders left
are then rescored in query order, exactly as bm25s sums them, so the scores are bit-identical to
bm25s's, and ranked by (score desc, document number asc) as
:func:`research_env.retrieval.bm25_engines._topk_row` ranks them: both accelerators return the same
passages and scores. Contributions must be positive (bm25s's "lucene" method; the caller checks).

Everything is compiled with ``cache=True``: the first process on a machine pays the JIT
compilation (10–30 s on 2 cores); later processes load the machine code from numba's cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_MARGIN = 1e-4  # relative safety margin on every pruning threshold (float32 rounding)


@njit(cache=True, nogil=True)
def column_max(data, indptr):  # type: ignore[no-untyped-def]
    """Largest value of each CSC column (0 for an empty column)."""
    n = len(indptr) - 1
    out = np.zeros(n, dtype=np.float32)
    for t in range(n):
        best = np.float32(0.0)
        for p in range(indptr[t], indptr[t + 1]):
            if data[p] > best:
                best = data[p]
        out[t] = best
    return out


@njit(cache=True, nogil=True)
def _prunable(partial, bound_left, theta):  # type: ignore[no-untyped-def]
    # True when partial + (what the terms left can add) is surely below theta. Scores are sums
    # of non-negative float32 terms, so a relative margin covers their rounding.
    return (partial + bound_left) * (1.0 + _MARGIN) < theta


@njit(cache=True, nogil=True)
def _floor(theta, bound_left):  # type: ignore[no-untyped-def]
    # The smallest positive float32 partial score p with not _prunable(p, bound_left, theta):
    # one comparison per document in the filtering loops. (Documents never seen score 0.)
    low = theta / (1.0 + _MARGIN) - bound_left
    tiny = np.finfo(np.float32).tiny
    return np.float32(low) if low > tiny else np.float32(tiny)


@njit(cache=True, nogil=True)
def _compact(acc, docs, n, dense, floor, out):  # type: ignore[no-untyped-def]
    """Write the documents d with ``acc[d] >= floor`` to ``out``; return how many.

    The documents are ``range(n)`` when ``dense``, else ``docs[:n]`` (``out`` may be ``docs``:
    it is written behind the reading position). Branch-free: the comparison is unpredictable.
    """
    kept = 0
    if dense:
        for d in range(n):
            out[kept] = d
            kept += acc[d] >= floor
    else:
        for i in range(n):
            d = docs[i]
            out[kept] = d
            kept += acc[d] >= floor
    return kept


@njit(cache=True, nogil=True)
def _push(heap, k, v):  # type: ignore[no-untyped-def]
    # Offer v to a full size-k min-heap of the k largest values seen.
    if v > heap[0]:
        heap[0] = v
        pos = 0
        while True:  # sift the new root down
            child = 2 * pos + 1
            if child >= k:
                break
            if child + 1 < k and heap[child + 1] < heap[child]:
                child += 1
            if heap[child] >= heap[pos]:
                break
            heap[pos], heap[child] = heap[child], heap[pos]
            pos = child


@njit(cache=True, nogil=True)
def _kth_largest(acc, docs, n, k, heap):  # type: ignore[no-untyped-def]
    """The k-th largest of ``acc[docs[:n]]`` (n >= k), by one pass with a size-k min-heap."""
    for i in range(k):
        heap[i] = acc[docs[i]]
    heap[:k] = np.sort(heap[:k])  # a sorted array is a valid min-heap
    for i in range(k, n):
        _push(heap, k, acc[docs[i]])
    return heap[0]


@njit(cache=True, nogil=True)
def _kth_largest_all(acc, k, heap):  # type: ignore[no-untyped-def]
    """The k-th largest of ``acc`` (len(acc) >= k)."""
    heap[:k] = np.sort(acc[:k])
    for i in range(k, len(acc)):
        _push(heap, k, acc[i])
    return heap[0]


@njit(cache=True, nogil=True)
def _lookup(indices, lo, hi, d):  # type: ignore[no-untyped-def]
    # Position of document d in the sorted posting list indices[lo:hi], or -1.
    end = hi
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < d:
            lo = mid + 1
        else:
            hi = mid
    if lo < end and indices[lo] == d:
        return lo
    return -1


@njit(cache=True, nogil=True)
def _one_query(  # type: ignore[no-untyped-def]
    data, indices, indptr, term_max, q_ids, k, acc, touched, cands, out_docs, out_scores
):
    """Top-``k`` of one query into ``out_docs`` / ``out_scores``; returns how many were found.

    ``acc`` (float32), ``touched`` and ``cands`` (int32) are per-thread work buffers of length
    num_docs; ``acc`` is all zero on entry and left so. Contributions are positive, so a zero
    accumulator means "not seen yet".
    """
    if len(q_ids) == 0:
        return 0
    # Unique terms with their multiplicity (a repeated query word counts again, as in bm25s and
    # rank_bm25), ordered by decreasing upper bound (ties: term id).
    srt = np.sort(q_ids)
    terms = np.empty(len(srt), dtype=np.int64)
    weights = np.empty(len(srt), dtype=np.float32)
    m = 0
    for i in range(len(srt)):
        if m > 0 and terms[m - 1] == srt[i]:
            weights[m - 1] += 1.0
        else:
            terms[m] = srt[i]
            weights[m] = 1.0
            m += 1
    bounds = np.empty(m, dtype=np.float64)
    for i in range(m):
        bounds[i] = weights[i] * term_max[terms[i]]
    order = np.argsort(-bounds, kind="mergesort")
    terms = terms[:m][order]
    weights = weights[:m][order]
    left = np.zeros(m + 1, dtype=np.float64)  # left[j]: what terms j.. can add at most
    postings_left = np.zeros(m + 1, dtype=np.int64)  # and how many postings they have
    for i in range(m - 1, -1, -1):
        left[i] = left[i + 1] + bounds[order[i]]
        postings_left[i] = postings_left[i + 1] + indptr[terms[i] + 1] - indptr[terms[i]]
    heap = np.empty(k, dtype=np.float32)

    # Phase 1: accumulate whole posting lists while a document none of them matched could
    # still reach the top k, i.e. while the k-th best partial score is not above what the
    # terms left can add. Computing that k-th best costs a pass over the documents seen so
    # far: it is only done when it can pay off. When even the first list covers an eighth of
    # the corpus ("dense" query), the documents seen are not tracked: passes run over the
    # whole accumulator, sequentially.
    num_docs = len(acc)
    dense = (indptr[terms[0] + 1] - indptr[terms[0]]) * 8 >= num_docs
    n_touched = 0
    best = np.float32(0.0)  # the best partial score: the k-th best is no larger
    theta = -np.inf
    j = 0
    while j < m:
        if dense:
            if j > 0 and _prunable(0.0, left[j], best):
                theta = _kth_largest_all(acc, k, heap)
                if _prunable(0.0, left[j], theta):
                    break
        elif n_touched >= k and n_touched < postings_left[j] and _prunable(0.0, left[j], best):
            theta = _kth_largest(acc, touched, n_touched, k, heap)
            if _prunable(0.0, left[j], theta):
                break
        t = terms[j]
        w = weights[j]
        if dense:
            for p in range(indptr[t], indptr[t + 1]):
                v = acc[indices[p]] + w * data[p]
                acc[indices[p]] = v
                best = max(best, v)
        else:  # the same, noting each document seen for the first time (branch-free)
            for p in range(indptr[t], indptr[t + 1]):
                d = indices[p]
                a = acc[d]
                v = a + w * data[p]
                acc[d] = v
                touched[n_touched] = d
                n_touched += (a == 0.0) & (v > 0.0)
                best = max(best, v)
        j += 1
    n_seen = num_docs if dense else n_touched  # document i is (i if dense else touched[i])

    # Phase 2: the terms left only update candidates that can still reach the top k.
    scanned = False  # whether some document outside "touched" may have a non-zero score
    if j < m:
        n_pool = _compact(acc, touched, n_seen, dense, _floor(theta, left[j]), cands)
        while j < m:
            t = terms[j]
            w = weights[j]
            lo = indptr[t]
            hi = indptr[t + 1]
            if n_pool * (np.log2(hi - lo + 1.0) + 1.0) < hi - lo:  # binary search per candidate
                for i in range(n_pool):
                    d = cands[i]
                    p = _lookup(indices, lo, hi, d)
                    if p >= 0:
                        acc[d] += w * data[p]
            else:  # cheaper: add the whole list; only candidates' scores are read from now on
                scanned = True
                for p in range(lo, hi):
                    acc[indices[p]] += w * data[p]
            j += 1
            theta = max(theta, _kth_largest(acc, cands, n_pool, k, heap))
            n_pool = _compact(acc, cands, n_pool, False, _floor(theta, left[j]), cands)
        cut = _kth_largest(acc, cands, n_pool, k, heap)
        n_sel = _compact(acc, cands, n_pool, False, _floor(cut, 0.0), cands)
    else:
        # Every term was accumulated: the contenders are the documents within rounding of
        # the k-th best score.
        cut = -np.inf
        if dense:
            if num_docs >= k:
                cut = _kth_largest_all(acc, k, heap)
        elif n_touched >= k:
            cut = _kth_largest(acc, touched, n_touched, k, heap)
        n_sel = _compact(acc, touched, n_seen, dense, _floor(cut, 0.0), cands)

    # Selection. The accumulation order above differs from bm25s's (query order), so float32
    # rounding may differ in the last bit: rescore the contenders in query order, then rank
    # them by (score desc, document asc).
    sel = np.sort(cands[:n_sel])
    vals = np.zeros(n_sel, dtype=np.float32)
    for qi in range(len(q_ids)):
        t = q_ids[qi]
        lo = indptr[t]
        hi = indptr[t + 1]
        for i in range(n_sel):
            p = _lookup(indices, lo, hi, sel[i])
            if p >= 0:
                vals[i] += data[p]
    found = min(k, n_sel)
    top = np.argsort(-vals, kind="mergesort")[:found]  # stable: ties keep document order
    for i in range(found):
        out_docs[i] = sel[top[i]]
        out_scores[i] = vals[top[i]]

    if dense or scanned:  # leave the buffers clean for the next query
        acc[:] = 0.0
    else:
        for i in range(n_touched):
            d = touched[i]
            acc[d] = 0.0
    return found


def _batch(  # type: ignore[no-untyped-def]
    data,
    indices,
    indptr,
    term_max,
    flat_ids,
    pointers,
    k,
    acc,
    touched,
    cands,
    out_docs,
    out_scores,
    counts,
):
    """Top-``k`` of every query, into the output arrays.

    Query q is ``flat_ids[pointers[q]:pointers[q + 1]]``; its results are the first
    ``counts[q]`` entries of ``out_docs[q]`` and ``out_scores[q]``. The work buffers have one
    row per chunk of queries; chunks run in parallel in the ``parallel=True`` compilation.
    (Outputs are passed in: returning arrays from compiled code costs microseconds per array,
    as much as a small query.)
    """
    n_queries = len(pointers) - 1
    n_chunks = acc.shape[0]
    per_chunk = (n_queries + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for q in range(c * per_chunk, min(n_queries, (c + 1) * per_chunk)):
            counts[q] = _one_query(
                data,
                indices,
                indptr,
                term_max,
                flat_ids[pointers[q] : pointers[q + 1]],
                k,
                acc[c],
                touched[c],
                cands[c],
                out_docs[q],
                out_scores[q],
            )


batch_serial = njit(cache=True, nogil=True)(_batch)
batch_parallel = njit(cache=True, nogil=True, parallel=True)(_batch)
