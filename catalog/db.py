"""The one database seam: engine and session factory built from DATABASE_URL (SQLite or PostgreSQL)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside one writer; foreign keys are off by default in SQLite.
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: in WAL mode NORMAL may lose the last commits on power loss, and a decision's audit entry must be
            # durable before its answer leaves; writes are rare here (reads never sync), so the fsync is cheap.
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA mmap_size=268435456")
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        # prepare_threshold=None: psycopg's server-side prepared statements gave generic plans that re-ran
        # plainto_tsquery per row (shared/notes/search.md); plain statements plan with the real query text.
        return create_engine(url, pool_pre_ping=True, pool_size=10, connect_args={"prepare_threshold": None})
    raise ValueError(f"不支持的数据库: {parsed.get_backend_name()} (支持 sqlite 与 postgresql)")


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        # The configured URL travels with each session: change hooks (sharing.gateway) name the deployment by it.
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False, info={"database_url": url})

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on any error."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
