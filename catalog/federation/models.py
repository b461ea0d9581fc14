"""Harvest sources and runs, and the provenance of everything a harvest brought in.

Provenance lives beside the catalog tables, not in them: a dataset is *harvested* when it has a HarvestRecord, a
department is a *mirror* when it has a HarvestDepartment, and a harvested data item's remote 一数一源 facts are in
its HarvestItem. The catalog tables keep their meaning (a harvested item is a local `reference` whose authoritative
item is not in this catalog, so `reference_item_id` is null); nothing here ever writes `authoritative_sources`.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.models import Base, Dataset, Department, utcnow


class HarvestSource(Base):
    """A remote catalog (a county instance of this product, or any CKAN) harvested into this one."""

    __tablename__ = "harvest_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # how the CLI names it, e.g. "xc"
    title: Mapped[str] = mapped_column(String(128))  # shown in withdrawal reasons and mirror names, e.g. "示范县"
    url: Mapped[str] = mapped_column(String(512))  # the remote site; ckanapi posts to <url>/api/action/<name>
    # Mirror departments are `<prefix><remote organization code>`; their datasets `<prefix><remote 资源代码>`.
    prefix: Mapped[str] = mapped_column(String(8), unique=True)
    api_key: Mapped[str | None] = mapped_column(String(256))  # sent as CKAN sends it; or read from api_key_env
    api_key_env: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16), default="auto")  # auto | search | search_desc | list
    page_size: Mapped[int] = mapped_column(Integer, default=100)
    timeout: Mapped[float] = mapped_column(Float, default=30.0)  # seconds per HTTP call
    retries: Mapped[int] = mapped_column(Integer, default=3)  # further attempts after a transient failure
    backoff: Mapped[float] = mapped_column(Float, default=1.0)  # seconds before the first retry, doubled each time
    # Every remote change up to this remote metadata_modified is applied here (advanced page by page).
    watermark: Mapped[dt.datetime | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HarvestRun(Base):
    """One harvest of one source: what it did and what went wrong (the run itself never raises)."""

    __tablename__ = "harvest_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_sources.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | ok | partial | failed
    mode: Mapped[str | None] = mapped_column(String(16))  # the listing the remote supported
    since: Mapped[dt.datetime | None] = mapped_column()  # the watermark the run started from
    pages: Mapped[int] = mapped_column(Integer, default=0)  # pages committed
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # refused here: clashes, unknown elements, rules
    retried: Mapped[int] = mapped_column(Integer, default=0)  # remote calls repeated after a transient failure
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)  # what stopped (part of) the run
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # per package: why skipped

    source: Mapped[HarvestSource] = relationship(lazy="joined")


class HarvestDepartment(Base):
    """A local department that mirrors one remote organization of one source (created by the harvester)."""

    __tablename__ = "harvest_departments"
    __table_args__ = (UniqueConstraint("source_id", "remote_org", name="uq_harvest_departments_source_org"),)

    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_sources.id", ondelete="CASCADE"), index=True)
    remote_org: Mapped[str] = mapped_column(String(128))  # the remote organization's name (or id)
    remote_title: Mapped[str | None] = mapped_column(String(200))

    department: Mapped[Department] = relationship(lazy="joined")


class HarvestRecord(Base):
    """Provenance of a harvested dataset: where it came from and which remote state it mirrors."""

    __tablename__ = "harvest_records"
    __table_args__ = (UniqueConstraint("source_id", "remote_id", name="uq_harvest_records_source_remote_id"),)

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_sources.id", ondelete="CASCADE"), index=True)
    remote_id: Mapped[str] = mapped_column(String(128))  # the package id at the source (for us: its 资源代码)
    remote_name: Mapped[str] = mapped_column(String(200), index=True)  # the package name (package_list lists names)
    remote_org: Mapped[str | None] = mapped_column(String(128))  # the remote organization (department)
    remote_org_title: Mapped[str | None] = mapped_column(String(200))
    remote_modified: Mapped[dt.datetime | None] = mapped_column()  # the remote metadata_modified mirrored
    remote_state: Mapped[str] = mapped_column(String(16), default="active")  # active | deleted
    fingerprint: Mapped[str] = mapped_column(String(64))  # of the local fields and items the package maps to
    withdrawn_by_harvest: Mapped[bool] = mapped_column(Boolean, default=False)
    first_harvested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    harvested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    dataset: Mapped[Dataset] = relationship(lazy="joined")
    source: Mapped[HarvestSource] = relationship(lazy="joined")


class HarvestItem(Base):
    """一数一源 across the federation: the remote source facts of one harvested data item.

    Locally the item is a `reference` with no local authoritative item; here it says whether the item is the
    element's authoritative source *at the remote* (remote_source = authoritative, remote_dataset = the package
    itself) or a copy there too (remote_dataset = the remote dataset it references).
    """

    __tablename__ = "harvest_items"

    item_id: Mapped[int] = mapped_column(ForeignKey("data_items.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("harvest_sources.id", ondelete="CASCADE"), index=True)
    element_identifier: Mapped[str] = mapped_column(String(32), index=True)
    remote_source: Mapped[str] = mapped_column(String(16))  # authoritative | reference (at the remote)
    remote_dataset: Mapped[str | None] = mapped_column(String(128))  # remote id of the remote authoritative dataset
    remote_item: Mapped[str] = mapped_column(String(64))  # the item code at the remote
    note: Mapped[str | None] = mapped_column(Text)


def harvested_from(session, dataset_id: int) -> HarvestRecord | None:  # noqa: ANN001
    """The provenance of a dataset that a harvest created, or None for a locally owned one."""
    return session.get(HarvestRecord, dataset_id)


def refuse_local_change(session, dataset: Dataset, what: str) -> None:  # noqa: ANN001
    """A harvested copy is kept by its source: local edits would be overwritten by the next run, and requests must
    go to the department that holds the data."""
    record = harvested_from(session, dataset.id)
    if record is not None:
        from catalog.errors import Conflict

        raise Conflict(f"资源 {dataset.code} 是从来源目录「{record.source.title}」({record.source.name}) 采集的只读副本"
                       f"（远端资源 {record.remote_id}），不能在本平台{what}；请到来源目录办理",
                       harvest_source=record.source.name, remote_id=record.remote_id)
