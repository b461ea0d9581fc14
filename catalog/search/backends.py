"""Full-text backends: each database's own index over the segmented text. Chosen by dialect in `backend_for`.

A backend answers one question — which datasets match these terms, and how well — and keeps its index in step
with the catalog inside the caller's transaction. Facets, filters and ordering happen over its answer
(catalog/search/engine.py), identically for both databases.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from catalog.search.segment import index_text

Terms = tuple[tuple[str, tuple[str, ...]], ...]


class IndexedDocument(Protocol):
    id: int
    name: str
    summary: str
    keywords: list[str]


class FullTextBackend(Protocol):
    def match(self, session: Session, terms: Terms) -> tuple[np.ndarray, np.ndarray]:
        """(dataset ids, scores; higher is better) of every dataset matching all terms."""

    def upsert(self, session: Session, dataset_id: int, fields: dict[str, str]) -> None: ...

    def delete(self, session: Session, dataset_id: int) -> None: ...


def document_fields(
    name: str, keywords: list[str], items: list[str], summary: str, department: str
) -> dict[str, str]:
    """The segmented text of one dataset, per indexed field."""
    return {
        "name": index_text(name),
        "keywords": index_text(" ".join(keywords)),
        "items": index_text(" ".join(items)),
        "summary": index_text(summary),
        "department": index_text(department),
    }


def _parse_id_score(ids_csv: str | None, scores_csv: str | None) -> tuple[np.ndarray, np.ndarray]:
    # One row of two comma-joined strings parses in C; fetching 50k (id, score) rows costs 10x as much in Python.
    if not ids_csv:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    ids = np.array(ids_csv.split(","), dtype=np.int64)
    scores = np.array(scores_csv.split(","), dtype=np.float64)
    return ids, scores


class SqliteFts5Backend:
    """SQLite FTS5 (unicode61 over space-joined jieba tokens), ranked by bm25 with per-column weights."""

    # name, keywords, items, summary, department
    WEIGHTS = "10.0, 6.0, 3.0, 1.0, 2.0"

    @staticmethod
    def _expression(terms: Terms) -> str:
        def quoted(word: str) -> str:
            return '"' + word.replace('"', '""') + '"'

        parts = []
        for word, subs in terms:
            if subs:
                parts.append("(" + quoted(word) + " OR (" + " AND ".join(quoted(s) for s in subs) + "))")
            else:
                parts.append(quoted(word))
        return " AND ".join(parts)

    def match(self, session: Session, terms: Terms) -> tuple[np.ndarray, np.ndarray]:
        row = session.execute(
            text(
                "SELECT group_concat(id), group_concat(score) FROM ("
                f"SELECT rowid AS id, -bm25(dataset_fts, {self.WEIGHTS}) AS score "
                "FROM dataset_fts WHERE dataset_fts MATCH :expr)"
            ),
            {"expr": self._expression(terms)},
        ).one()
        return _parse_id_score(row[0], row[1])

    def upsert(self, session: Session, dataset_id: int, fields: dict[str, str]) -> None:
        self.delete(session, dataset_id)
        session.execute(
            text(
                "INSERT INTO dataset_fts (rowid, name, keywords, items, summary, department) "
                "VALUES (:id, :name, :keywords, :items, :summary, :department)"
            ),
            {"id": dataset_id, **fields},
        )

    def delete(self, session: Session, dataset_id: int) -> None:
        session.execute(text("DELETE FROM dataset_fts WHERE rowid = :id"), {"id": dataset_id})


class PostgresTsvectorBackend:
    """PostgreSQL tsvector ('simple' config over jieba tokens, weighted A–D) in a narrow table with a GIN index."""

    @staticmethod
    def _expression(terms: Terms) -> str:
        # Tokens are runs of word characters only (segment._WORD), so single quotes cannot occur inside them.
        def quoted(word: str) -> str:
            return "'" + word + "'"

        parts = []
        for word, subs in terms:
            if subs:
                parts.append("(" + quoted(word) + " | (" + " & ".join(quoted(s) for s in subs) + "))")
            else:
                parts.append(quoted(word))
        return " & ".join(parts)

    def match(self, session: Session, terms: Terms) -> tuple[np.ndarray, np.ndarray]:
        row = session.execute(
            text(
                "SELECT string_agg(dataset_id::text, ','), string_agg(ts_rank(tsv, q)::text, ',') "
                "FROM dataset_search, to_tsquery('simple', :expr) AS q WHERE tsv @@ q"
            ),
            {"expr": self._expression(terms)},
        ).one()
        return _parse_id_score(row[0], row[1])

    def upsert(self, session: Session, dataset_id: int, fields: dict[str, str]) -> None:
        session.execute(
            text(
                "INSERT INTO dataset_search (dataset_id, tsv) VALUES (:id, "
                "setweight(to_tsvector('simple', :name), 'A') || setweight(to_tsvector('simple', :keywords), 'B') || "
                "setweight(to_tsvector('simple', :items), 'C') || "
                "setweight(to_tsvector('simple', :summary || ' ' || :department), 'D')) "
                "ON CONFLICT (dataset_id) DO UPDATE SET tsv = EXCLUDED.tsv"
            ),
            {"id": dataset_id, **fields},
        )

    def delete(self, session: Session, dataset_id: int) -> None:
        session.execute(text("DELETE FROM dataset_search WHERE dataset_id = :id"), {"id": dataset_id})


def backend_for(dialect: str) -> FullTextBackend:
    if dialect == "sqlite":
        return SqliteFts5Backend()
    if dialect == "postgresql":
        return PostgresTsvectorBackend()
    raise ValueError(f"no full-text backend for {dialect}")
