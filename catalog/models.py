"""ORM model of the catalog (SQLAlchemy 2.0 typed mapping). Alembic owns the schema; see catalog/migrations."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from catalog.enums import (
    Category,
    CollectionStatus,
    DatasetStatus,
    DataType,
    ItemSource,
    NationalLevel,
    OpenType,
    SecurityGrade,
    Sensitivity,
    ShareMethod,
    ShareType,
    UpdateCycle,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def enum_column(enum_cls: type, **kw: Any) -> Any:
    # Stored as the Chinese value in a VARCHAR with a CHECK constraint, identical on SQLite and PostgreSQL.
    return Enum(
        enum_cls,
        native_enum=False,
        values_callable=lambda e: [m.value for m in e],
        length=32,
        validate_strings=True,
        create_constraint=True,
        name=f"{enum_cls.__name__.lower()}",
        **kw,
    )


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no zone and would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    short_name: Mapped[str | None] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    parent: Mapped[Department | None] = relationship(remote_side=[id])


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    contact: Mapped[str | None] = mapped_column(String(200))  # outside users (社会用户) give a phone or e-mail
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")

    def has_role(self, role: str) -> bool:
        return role in (self.roles or [])


class ApiToken(Base):
    """A bearer token. Only a keyed hash of the secret is stored; the secret is shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to tell tokens apart in listings
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="joined")


class DataElement(Base):
    """One version of a data element standard (数据元), DB33/T 2426-2022 attributes."""

    __tablename__ = "data_elements"
    __table_args__ = (UniqueConstraint("identifier", "version", name="uq_data_elements_identifier_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), index=True)
    name_en: Mapped[str | None] = mapped_column(String(128))
    definition: Mapped[str | None] = mapped_column(Text)
    data_type: Mapped[DataType] = mapped_column(enum_column(DataType))
    format: Mapped[str | None] = mapped_column(String(64))
    min_length: Mapped[int | None] = mapped_column(Integer)
    max_length: Mapped[int | None] = mapped_column(Integer)
    pattern: Mapped[str | None] = mapped_column(String(512))
    code_list: Mapped[dict[str, str] | None] = mapped_column(JSON)
    value_range: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sensitivity: Mapped[Sensitivity] = mapped_column(enum_column(Sensitivity))
    security_grade: Mapped[SecurityGrade] = mapped_column(enum_column(SecurityGrade))
    object_class_term: Mapped[str | None] = mapped_column(String(64))
    representation_term: Mapped[str | None] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(32))
    source_org: Mapped[str | None] = mapped_column(String(32))
    checks: Mapped[list[str]] = mapped_column(JSON, default=list)
    published: Mapped[dt.date | None] = mapped_column(Date)
    remarks: Mapped[str | None] = mapped_column(Text)


class Dataset(Base):
    """A catalogued information resource (信息资源), fields per DOMAIN.md "Catalog entry"."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # 资源代码
    name: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    category: Mapped[Category] = mapped_column(enum_column(Category))
    base_library: Mapped[str | None] = mapped_column(String(32))
    topic: Mapped[str | None] = mapped_column(String(64))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    contact_name: Mapped[str | None] = mapped_column(String(64))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    share_type: Mapped[ShareType] = mapped_column(enum_column(ShareType))
    share_condition: Mapped[str | None] = mapped_column(Text)
    share_method: Mapped[ShareMethod] = mapped_column(enum_column(ShareMethod))
    open_type: Mapped[OpenType] = mapped_column(enum_column(OpenType))
    open_condition: Mapped[str | None] = mapped_column(Text)
    update_cycle: Mapped[UpdateCycle] = mapped_column(enum_column(UpdateCycle))
    security_grade: Mapped[SecurityGrade] = mapped_column(enum_column(SecurityGrade))
    national_level: Mapped[NationalLevel] = mapped_column(enum_column(NationalLevel))
    collection_status: Mapped[CollectionStatus] = mapped_column(
        enum_column(CollectionStatus), default=CollectionStatus.not_collected
    )
    status: Mapped[DatasetStatus] = mapped_column(enum_column(DatasetStatus), default=DatasetStatus.published)
    release_date: Mapped[dt.date | None] = mapped_column(Date)
    latest_version: Mapped[int | None] = mapped_column(Integer)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    related: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column()
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)

    department: Mapped[Department] = relationship(lazy="joined")
    items: Mapped[list[DataItem]] = relationship(
        back_populates="dataset", order_by="DataItem.position", cascade="all, delete-orphan"
    )


class DataItem(Base):
    """One field of a dataset (数据项), bound to exactly one data element version (一标准)."""

    __tablename__ = "data_items"
    __table_args__ = (UniqueConstraint("dataset_id", "code", name="uq_data_items_dataset_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    data_element_id: Mapped[int] = mapped_column(ForeignKey("data_elements.id"), index=True)
    data_type: Mapped[DataType] = mapped_column(enum_column(DataType))
    length: Mapped[int | None] = mapped_column(Integer)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    is_key: Mapped[bool] = mapped_column(Boolean, default=False)
    sensitivity: Mapped[Sensitivity] = mapped_column(enum_column(Sensitivity))
    security_grade: Mapped[SecurityGrade] = mapped_column(enum_column(SecurityGrade))
    source: Mapped[ItemSource] = mapped_column(enum_column(ItemSource))
    # For a reference: the authoritative item it copies. Null for the authoritative item itself.
    reference_item_id: Mapped[int | None] = mapped_column(ForeignKey("data_items.id"), index=True)

    dataset: Mapped[Dataset] = relationship(back_populates="items")
    data_element: Mapped[DataElement] = relationship(lazy="joined")
    reference_item: Mapped[DataItem | None] = relationship(remote_side=[id], lazy="joined", join_depth=1)


class AuthoritativeSource(Base):
    """一数一源: the one (dataset, department) that is the source of a data element.

    The primary key on the element identifier is what makes a second claim impossible, also when two transactions
    race: the database refuses the second insert, whatever the application checked before.
    """

    __tablename__ = "authoritative_sources"

    element_identifier: Mapped[str] = mapped_column(String(32), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("data_items.id", ondelete="CASCADE"), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    claimed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    dataset: Mapped[Dataset] = relationship(lazy="joined")
    department: Mapped[Department] = relationship(lazy="joined")


class DatasetVersion(Base):
    """A published, immutable snapshot of a dataset's data (filled by collection, 归集)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1024))
    row_count: Mapped[int] = mapped_column(BigInteger)
    byte_size: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))
    schema_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    collected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class InventoryEntry(Base):
    """The departments' declared resource inventory (应编尽编): what ought to be catalogued."""

    __tablename__ = "inventory_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # the planned 资源代码
    name: Mapped[str] = mapped_column(String(200))

    department: Mapped[Department] = relationship(lazy="joined")


class CatalogState(Base):
    """One row: a counter bumped in the same transaction as any catalog change (drives search caches)."""

    __tablename__ = "catalog_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class CollectionRun(Base):
    """One delivery attempt (归集): an upload or a SQL pull, successful, unchanged or refused."""

    __tablename__ = "collection_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # published | unchanged | failed
    source_kind: Mapped[str] = mapped_column(String(16))  # upload | sql | cli
    source_name: Mapped[str | None] = mapped_column(String(512))  # file name, or the SQL source without password
    file_format: Mapped[str | None] = mapped_column(String(16))
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    error: Mapped[str | None] = mapped_column(Text)
    delivered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
