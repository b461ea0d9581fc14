"""Alembic migrations: from empty to head and back, and the migration matches the ORM model exactly."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from catalog.migrate import current_revision, downgrade, upgrade
from catalog.models import Base
import quality.models  # noqa: F401

TABLES = {"departments", "users", "api_tokens", "data_elements", "datasets", "data_items", "authoritative_sources",
          "dataset_versions", "inventory_entries", "catalog_state", "collection_runs",
          "quality_runs", "quality_rule_results", "problem_tickets", "ticket_events"}


def test_migrating_from_empty_creates_the_catalog_and_its_search_index(empty_db):
    names = set(inspect(empty_db.engine).get_table_names())
    assert TABLES <= names
    assert ("dataset_fts" if empty_db.dialect == "sqlite" else "dataset_search") in names
    assert current_revision(empty_db.engine) == "0006"


def test_the_migration_matches_the_models(empty_db):
    with empty_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # The full-text index is each backend's own structure, created by the migration outside the ORM model.
    diff = [d for d in diff if not (d[0] in ("remove_table", "remove_index") and
                                    _name(d[1]).startswith(("dataset_fts", "dataset_search", "ix_dataset_search")))]
    assert diff == []


def _name(obj) -> str:
    return getattr(obj, "name", "") or ""


def test_downgrade_to_empty_and_upgrade_again(empty_db):
    downgrade(empty_db.engine, "base")
    leftover = set(inspect(empty_db.engine).get_table_names()) - {"alembic_version"}
    assert not (leftover & TABLES)
    upgrade(empty_db.engine)
    assert TABLES <= set(inspect(empty_db.engine).get_table_names())
