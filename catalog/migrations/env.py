"""Alembic environment. The URL comes from the caller (catalog.migrate) or DATABASE_URL, never from an ini file."""
from __future__ import annotations

from alembic import context

from catalog.db import make_engine
from catalog.models import Base
import quality.models  # noqa: F401 - registers the quality tables on Base.metadata
import sharing.models  # noqa: F401 - registers the sharing tables
import catalog.federation.models  # noqa: F401 - registers the harvest tables (federation)
from catalog.settings import get_settings

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
    # The full-text index tables are each backend's own, made by hand in 0001: autogenerate must not drop them.
    return not (type_ == "table" and name and name.startswith(("dataset_fts", "dataset_search")))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url()
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True,
                          include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `opendata init`")
run_migrations_online()
