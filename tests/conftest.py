"""Test fixtures. Every DB-touching test runs on SQLite and on PostgreSQL (`backend` is parametrized).

PostgreSQL: `ODH_TEST_POSTGRES_URL` names a database on the real server that the run created for itself
(tests/run.sh does it); each test gets its own database cloned from a migrated (and a seeded) template, and every
database named after it is dropped at the end. Without the variable the PostgreSQL half fails when CI is set and
is skipped otherwise.
"""
from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from catalog.app import create_app
from catalog.auth import issue_token
from catalog.db import Database
from catalog.migrate import upgrade
from catalog.models import User
from catalog.search import CatalogSearch, backend_for
from catalog.settings import Settings
from seeds.loader import seed

PG_URL = os.environ.get("ODH_TEST_POSTGRES_URL")
_counter = itertools.count()


def _pg_admin():
    url = make_url(PG_URL).set(drivername="postgresql+psycopg", database="postgres")
    return create_engine(url, isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    return make_url(PG_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def _seed(db: Database) -> None:
    with db.session() as session:
        seed(session, CatalogSearch(backend_for(db.dialect)))


class _Templates:
    """Migrated and seeded template databases, built once per test run and backend."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.sqlite: dict[str, Path] = {}
        self.pg: dict[str, str] = {}
        self.pg_created: list[str] = []

    def sqlite_template(self, kind: str) -> Path:
        if kind not in self.sqlite:
            path = self.tmp / f"template_{kind}.db"
            db = Database(f"sqlite:///{path}")
            upgrade(db.engine)
            if kind == "seeded":
                _seed(db)
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db.dispose()
            self.sqlite[kind] = path
        return self.sqlite[kind]

    def pg_template(self, kind: str) -> str:
        if kind not in self.pg:
            base = make_url(PG_URL).database
            name = f"{base}_tpl_{kind}"
            self.create_pg(name)
            db = Database(_pg_url(name))
            upgrade(db.engine)
            if kind == "seeded":
                _seed(db)
            db.dispose()
            self.pg[kind] = name
        return self.pg[kind]

    def create_pg(self, name: str, template: str | None = None) -> None:
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            tpl = f' TEMPLATE "{template}"' if template else " TEMPLATE template0 ENCODING 'UTF8'"
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{tpl}')
        admin.dispose()
        self.pg_created.append(name)

    def drop_pg(self, name: str) -> None:
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory) -> Iterator[_Templates]:
    t = _Templates(tmp_path_factory.mktemp("templates"))
    yield t
    if PG_URL:
        for name in t.pg.values():
            t.drop_pg(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    if request.param == "postgresql" and not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("ODH_TEST_POSTGRES_URL is not set: the PostgreSQL tests must run in CI (see tests/run.sh)")
        pytest.skip("PostgreSQL tests need ODH_TEST_POSTGRES_URL (tests/run.sh sets it)")
    return request.param


def _database(backend: str, kind: str, templates: _Templates, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        path = tmp_path / "catalog.db"
        shutil.copy(templates.sqlite_template(kind), path)
        db = Database(f"sqlite:///{path}")
        yield db
        db.dispose()
    else:
        template = templates.pg_template(kind)
        name = f"{make_url(PG_URL).database}_{os.getpid()}_{next(_counter)}"
        templates.create_pg(name, template)
        db = Database(_pg_url(name))
        yield db
        db.dispose()
        templates.drop_pg(name)


@pytest.fixture
def empty_db(backend, templates, tmp_path) -> Iterator[Database]:
    """A migrated database with no rows (but the catalog_state row)."""
    yield from _database(backend, "empty", templates, tmp_path)


@pytest.fixture
def db(backend, templates, tmp_path) -> Iterator[Database]:
    """A migrated database holding the demo seeds (seeds/, schemas/standards/)."""
    yield from _database(backend, "seeded", templates, tmp_path)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "var", secret_key="test-secret")


@pytest.fixture
def app(db, settings):
    return create_app(settings, database=db)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def tokens(db, settings) -> dict[str, str]:
    """A fresh API token for every seeded user, by username."""
    out = {}
    with db.session() as session:
        for user in session.execute(select(User)).scalars():
            _, secret = issue_token(session, settings.secret_key, user, "test", 1)
            out[user.username] = secret
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}




TEST_ELEMENTS = {
    # identifier: (name, sensitivity, grade, max_length, data type)
    "TE0000001": ("测试证件号码", "敏感个人信息", "L3", 18, "string"),
    "TE0000002": ("测试名称", "一般", "L1", 100, "string"),
    "TE0000003": ("测试编码", "一般", "L1", 20, "string"),
    "TE0000004": ("测试机密项", "一般", "L4", 50, "string"),
    "TE0000005": ("测试数量", "一般", "L1", None, "integer"),
    "TE0000006": ("测试日期", "一般", "L1", None, "date"),
    "TE0000007": ("测试金额", "一般", "L1", None, "decimal"),
}


@pytest.fixture
def elements(db) -> dict[str, str]:
    """Data elements no seeded dataset uses, so a test controls who sources them. name → identifier."""
    from catalog.models import DataElement

    with db.session() as session:
        for identifier, (name, sensitivity, grade, max_length, data_type) in TEST_ELEMENTS.items():
            session.add(DataElement(identifier=identifier, version="1.0", name=name, data_type=data_type,
                                    max_length=max_length, sensitivity=sensitivity, security_grade=grade, checks=[]))
    return {name: identifier for identifier, (name, *_rest) in TEST_ELEMENTS.items()}
