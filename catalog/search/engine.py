"""Catalog search: full-text match from the database's own index, then filters, facets and ordering in numpy.

Counting facets and picking the top page over tens of thousands of matches is where time goes
(shared/notes/search.md: ~1.2–1.7 µs per matched row in SQL); over numpy arrays of small integer codes it is a few
hundred microseconds. The arrays are a snapshot of the catalog's facet columns, reloaded when the catalog's
generation counter (bumped in every catalog write transaction) moves, so every worker process sees each change on
its next search.
"""
from __future__ import annotations

import html
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.enums import Category, CollectionStatus, DatasetStatus, OpenType, SecurityGrade, ShareType
from catalog.models import CatalogState, Dataset, Department
from catalog.search.backends import FullTextBackend
from catalog.search.segment import highlight_words, query_terms

# facet name → (Dataset column, the fixed vocabulary, or None for values read from the data)
FACETS: dict[str, tuple[Any, list[str] | None]] = {
    "department": (Dataset.department_id, None),
    "category": (Dataset.category, [c.value for c in Category]),
    "share_type": (Dataset.share_type, [s.value for s in ShareType]),
    "open_type": (Dataset.open_type, [o.value for o in OpenType]),
    "security_grade": (Dataset.security_grade, [g.value for g in SecurityGrade]),
    "collection_status": (Dataset.collection_status, [c.value for c in CollectionStatus]),
}
SORTS = ("relevance", "code", "name", "-release_date", "release_date", "-updated_at")
PUBLIC_OPEN_TYPES = (OpenType.unconditional.value, OpenType.restricted.value)
# The database scores at most this many candidates per query (more when a deep page asks for it); see _rank_page.
RANK_LIMIT = 1000


def _value(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


@dataclass
class FacetSnapshot:
    """Column arrays of every dataset, aligned by position; `pos_of[id]` maps a dataset id to its position."""

    generation: int
    ids: np.ndarray
    pos_of: np.ndarray
    codes: dict[str, np.ndarray]  # facet → int code per dataset
    labels: dict[str, list[str]]  # facet → value per code
    published: np.ndarray  # bool
    order: dict[str, np.ndarray]  # sort key → rank of each dataset under that key
    name_len: np.ndarray  # characters in the name: the pre-ranking's stand-in for bm25's length normalisation
    department_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, generation: int) -> FacetSnapshot:
        cols = [Dataset.id, Dataset.status, Dataset.code, Dataset.name, Dataset.release_date, Dataset.updated_at]
        cols += [col for col, _ in FACETS.values()]
        rows = session.execute(select(*cols).order_by(Dataset.id)).all()
        n = len(rows)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        pos_of = np.full(int(ids.max()) + 1 if n else 1, -1, dtype=np.int64)
        pos_of[ids] = np.arange(n)
        departments = dict(session.execute(select(Department.id, Department.code)).all())
        department_names = dict(session.execute(select(Department.code, Department.name)).all())
        codes: dict[str, np.ndarray] = {}
        labels: dict[str, list[str]] = {}
        for offset, (facet, (_col, vocabulary)) in enumerate(FACETS.items()):
            raw = [r[6 + offset] for r in rows]
            values = [departments[v] for v in raw] if facet == "department" else [_value(v) for v in raw]
            vocab = list(vocabulary) if vocabulary else sorted(set(values))
            for v in values:
                if v not in vocab:
                    vocab.append(v)
            index = {v: i for i, v in enumerate(vocab)}
            codes[facet] = np.fromiter((index[v] for v in values), dtype=np.int32, count=n)
            labels[facet] = vocab
        published = np.fromiter((_value(r[1]) == DatasetStatus.published.value for r in rows), dtype=bool, count=n)

        def ranks(keys: list[Any], reverse: bool = False) -> np.ndarray:
            # Position of each dataset under this ordering; datasets without a value go last either way.
            present = sorted((i for i in range(n) if keys[i] is not None), key=keys.__getitem__, reverse=reverse)
            order = present + [i for i in range(n) if keys[i] is None]
            rank = np.empty(n, dtype=np.int64)
            rank[np.array(order, dtype=np.int64)] = np.arange(n)
            return rank

        order = {
            "code": ranks([r[2] for r in rows]),
            "name": ranks([r[3] for r in rows]),
            "release_date": ranks([r[4] for r in rows]),
            "-release_date": ranks([r[4] for r in rows], reverse=True),
            "-updated_at": ranks([r[5] for r in rows], reverse=True),
        }
        name_len = np.fromiter((len(r[3]) for r in rows), dtype=np.int32, count=n)
        return cls(generation, ids, pos_of, codes, labels, published, order, name_len, department_names)


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()  # facet → accepted values (OR within, AND across)
    sort: str = "relevance"
    page: int = 1
    page_size: int = 20
    public_only: bool = False  # anonymous callers see only published, open datasets


@dataclass
class SearchResult:
    total: int
    ids: list[int]
    scores: list[float | None]
    facets: dict[str, list[dict[str, Any]]]
    highlight_words: list[str]


class CatalogSearch:
    def __init__(self, backend: FullTextBackend, cache_size: int = 512):
        self.backend = backend
        self._snapshot: FacetSnapshot | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, SearchQuery], SearchResult] = OrderedDict()
        self._cache_size = cache_size

    def snapshot(self, session: Session) -> FacetSnapshot:
        generation = session.execute(select(CatalogState.generation).where(CatalogState.id == 1)).scalar_one()
        snap = self._snapshot
        if snap is None or snap.generation != generation:
            with self._lock:
                snap = self._snapshot
                if snap is None or snap.generation != generation:
                    snap = FacetSnapshot.load(session, generation)
                    self._snapshot = snap
                    self._cache.clear()
        return snap

    def search(self, session: Session, query: SearchQuery) -> SearchResult:
        snap = self.snapshot(session)
        key = (snap.generation, query)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        result = self._search(session, snap, query)
        if self._cache_size:
            with self._lock:
                self._cache[key] = result
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return result

    def _search(self, session: Session, snap: FacetSnapshot, query: SearchQuery) -> SearchResult:
        n = len(snap.ids)
        terms = query_terms(query.q) if query.q.strip() else ()
        if terms:
            base = self._positions_mask(snap, self.backend.match_ids(session, terms))
        else:
            base = np.ones(n, dtype=bool)
        base &= snap.published
        if query.public_only:
            open_codes = [snap.labels["open_type"].index(v) for v in PUBLIC_OPEN_TYPES]
            base &= np.isin(snap.codes["open_type"], open_codes)

        masks: dict[str, np.ndarray] = {}
        for facet, values in query.filters:
            vocab = snap.labels[facet]
            wanted = [vocab.index(v) for v in values if v in vocab]
            masks[facet] = np.isin(snap.codes[facet], wanted)

        facets: dict[str, list[dict[str, Any]]] = {}
        for facet in FACETS:
            # Disjunctive facets: a facet's counts apply every filter but its own, so choices within it stay visible.
            mask = base.copy()
            for other, m in masks.items():
                if other != facet:
                    mask &= m
            counts = np.bincount(snap.codes[facet][mask], minlength=len(snap.labels[facet]))
            selected = dict(query.filters).get(facet, ())
            entries = []
            for code, value in enumerate(snap.labels[facet]):
                if counts[code] or value in selected:
                    entry: dict[str, Any] = {"value": value, "count": int(counts[code])}
                    if facet == "department":
                        entry["label"] = snap.department_names.get(value, value)
                    entries.append(entry)
            if facet == "department":
                entries.sort(key=lambda e: -e["count"])
            facets[facet] = entries

        final = base
        for m in masks.values():
            final = final & m
        matched = np.flatnonzero(final)
        total = int(matched.size)
        start = (query.page - 1) * query.page_size
        end = start + query.page_size
        page_scores: list[float | None]
        if start >= total:
            page_pos = np.empty(0, dtype=np.int64)
            page_scores = []
        elif query.sort == "relevance" and terms:
            page_pos, scores = self._rank_page(session, snap, terms, matched, start, end)
            page_scores = [float(x) for x in scores]
        else:
            key = snap.order["code" if query.sort == "relevance" else query.sort][matched]
            if total > end * 4:
                part = np.argpartition(key, end - 1)[:end]
                part = part[np.argsort(key[part], kind="stable")]
            else:
                part = np.argsort(key, kind="stable")
            page_pos = matched[part[start:end]]
            page_scores = [None] * len(page_pos)
        page_ids = snap.ids[page_pos].tolist()
        return SearchResult(total, page_ids, page_scores, facets, highlight_words(query.q) if terms else [])

    @staticmethod
    def _positions_mask(snap: FacetSnapshot, ids: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(snap.ids), dtype=bool)
        ids = ids[ids < len(snap.pos_of)]
        pos = snap.pos_of[ids]
        mask[pos[pos >= 0]] = True  # a row indexed after the snapshot was taken waits for the next generation
        return mask

    def _rank_page(self, session: Session, snap: FacetSnapshot, terms, matched: np.ndarray, start: int,
                   end: int) -> tuple[np.ndarray, np.ndarray]:
        """The page's positions and scores, ranked by the database's own relevance (bm25 / ts_rank).

        Scoring costs ~1.3–1.7 µs per row in the database, so a common word matching half the catalog would cost
        tens of ms. When more than RANK_LIMIT datasets match, the candidates are pre-selected — datasets whose
        name holds every query word first, shorter names first (what bm25's length normalisation favours) — and
        only those are scored (by their name alone when all of them match there). With fewer matches the ranking
        is exact.
        """
        limit = max(RANK_LIMIT, end)
        candidates = matched
        name_only = False
        if candidates.size > limit:
            in_name = self._positions_mask(snap, self.backend.match_ids(session, terms, name_only=True))
            n = len(snap.ids)
            # One integer key (name tier, then name length, then code order) so a linear-time partition suffices.
            key = (~in_name[candidates]).astype(np.int64) * (1 << 40) \
                + snap.name_len[candidates].astype(np.int64) * n + snap.order["code"][candidates]
            candidates = candidates[np.argpartition(key, limit - 1)[:limit]]
            name_only = bool(in_name[candidates].all())
        ids, scores = self.backend.rank(session, terms, snap.ids[candidates], name_only=name_only)
        score_of = np.full(len(snap.ids), -np.inf)
        score_of[snap.pos_of[ids]] = scores
        ranked = candidates[np.lexsort((snap.order["code"][candidates], -score_of[candidates]))[start:end]]
        return ranked, score_of[ranked]


def highlight(text: str | None, words: list[str], limit: int | None = None) -> str | None:
    """HTML-escaped text with the query words wrapped in <em>; cut around the first hit when a limit is given."""
    if text is None:
        return None
    if limit and len(text) > limit:
        first = min((i for i in (text.find(w) for w in words) if i >= 0), default=0)
        start = max(0, first - limit // 4)
        text = ("…" if start else "") + text[start : start + limit] + ("…" if start + limit < len(text) else "")
    out = html.escape(text)
    for word in words:
        escaped = html.escape(word)
        if escaped and escaped in out:
            out = out.replace(escaped, f"\x00{escaped}\x01")
    # Nested markers from overlapping words collapse into one <em>.
    result, depth = [], 0
    for ch in out:
        if ch == "\x00":
            if depth == 0:
                result.append("<em>")
            depth += 1
        elif ch == "\x01":
            depth -= 1
            if depth == 0:
                result.append("</em>")
        else:
            result.append(ch)
    return "".join(result)
