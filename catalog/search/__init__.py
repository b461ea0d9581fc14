"""Chinese full-text search over the catalog (FTS5 on SQLite, tsvector + GIN on PostgreSQL)."""
from catalog.search.backends import backend_for, document_fields
from catalog.search.engine import FACETS, SORTS, CatalogSearch, SearchQuery, SearchResult, highlight

__all__ = ["FACETS", "SORTS", "CatalogSearch", "SearchQuery", "SearchResult", "backend_for", "document_fields", "highlight"]
