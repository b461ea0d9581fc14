"""Read-side queries and ORM → response mapping for the catalog API."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.errors import NotFound
from catalog.models import AuthoritativeSource, DataElement, DataItem, Dataset, Department, User
from catalog.schemas import (
    AuthoritativeSourceOut,
    DataElementDetail,
    DataElementOut,
    DataItemOut,
    DatasetOut,
    DatasetSummary,
    DepartmentOut,
    ElementRef,
)
from catalog.service import _version_key, authoritative_source


def department_out(d: Department) -> DepartmentOut:
    return DepartmentOut(code=d.code, name=d.name, short_name=d.short_name,
                         parent_code=d.parent.code if d.parent_id and d.parent else None)


def department_and_user_names(session: Session) -> tuple[dict[int, str], dict[int, str]]:
    """Department names and user names by id, read once per request rather than once per listed record."""
    return (dict(session.execute(select(Department.id, Department.name)).all()),
            dict(session.execute(select(User.id, User.username)).all()))


def list_departments(session: Session, offset: int, limit: int) -> tuple[int, list[Department]]:
    total = session.execute(select(func.count(Department.id))).scalar_one()
    rows = session.execute(select(Department).order_by(Department.code).offset(offset).limit(limit)).scalars()
    return total, list(rows)


def source_out(src: AuthoritativeSource, item_code: str) -> AuthoritativeSourceOut:
    return AuthoritativeSourceOut(dataset_code=src.dataset.code, dataset_name=src.dataset.name,
                                  department_code=src.department.code, department_name=src.department.name,
                                  item_code=item_code)


def item_out(item: DataItem) -> DataItemOut:
    src = None
    if item.reference_item is not None:
        ref = item.reference_item
        src = AuthoritativeSourceOut(dataset_code=ref.dataset.code, dataset_name=ref.dataset.name,
                                     department_code=ref.dataset.department.code,
                                     department_name=ref.dataset.department.name, item_code=ref.code)
    el = item.data_element
    return DataItemOut(code=item.code, name=item.name,
                       element=ElementRef(identifier=el.identifier, version=el.version, name=el.name),
                       data_type=item.data_type, length=item.length, required=item.required, is_key=item.is_key,
                       sensitivity=item.sensitivity, security_grade=item.security_grade, source=item.source,
                       authoritative_source=src)


def summary_fields(d: Dataset) -> dict:
    return dict(code=d.code, name=d.name, summary=d.summary or "", keywords=d.keywords or [], category=d.category,
                base_library=d.base_library, topic=d.topic, department=department_out(d.department),
                share_type=d.share_type, open_type=d.open_type, security_grade=d.security_grade,
                update_cycle=d.update_cycle, collection_status=d.collection_status, status=d.status,
                release_date=d.release_date, updated_at=d.updated_at)


def dataset_summary(d: Dataset) -> DatasetSummary:
    return DatasetSummary(**summary_fields(d))


def dataset_out(d: Dataset) -> DatasetOut:
    return DatasetOut(
        **summary_fields(d), share_condition=d.share_condition, share_method=d.share_method,
        open_condition=d.open_condition, national_level=d.national_level, contact_name=d.contact_name,
        contact_phone=d.contact_phone, latest_version=d.latest_version, row_count=d.row_count,
        related=d.related or [], created_at=d.created_at, withdrawn_at=d.withdrawn_at,
        withdrawn_reason=d.withdrawn_reason, items=[item_out(i) for i in d.items],
    )


def datasets_by_id(session: Session, ids: list[int]) -> list[Dataset]:
    if not ids:
        return []
    rows = session.execute(select(Dataset).where(Dataset.id.in_(ids))).unique().scalars().all()
    by_id = {d.id: d for d in rows}
    return [by_id[i] for i in ids if i in by_id]


def list_standards(session: Session, q: str | None, offset: int, limit: int) -> tuple[int, list[DataElement]]:
    """The latest version of each data element, optionally filtered by name / identifier / English name."""
    elements = session.execute(select(DataElement).order_by(DataElement.identifier)).scalars().all()
    latest: dict[str, DataElement] = {}
    for e in elements:
        if e.identifier not in latest or _version_key(e.version) > _version_key(latest[e.identifier].version):
            latest[e.identifier] = e
    rows = list(latest.values())
    if q:
        needle = q.strip().lower()
        rows = [e for e in rows if needle in e.name.lower() or needle in e.identifier.lower()
                or needle in (e.name_en or "").lower()]
    return len(rows), rows[offset: offset + limit]


def standard_detail(session: Session, identifier: str) -> DataElementDetail:
    versions = session.execute(select(DataElement).where(DataElement.identifier == identifier)).scalars().all()
    if not versions:
        raise NotFound(f"数据元 {identifier} 不存在")
    versions = sorted(versions, key=lambda e: _version_key(e.version))
    src = authoritative_source(session, identifier)
    source = None
    if src is not None:
        item = session.get(DataItem, src.item_id)
        source = source_out(src, item.code if item else "")
    return DataElementDetail(**DataElementOut.model_validate(versions[-1]).model_dump(),
                             versions=[v.version for v in versions], authoritative_source=source)


def standard_version(session: Session, identifier: str, version: str) -> DataElement:
    row = session.execute(
        select(DataElement).where(DataElement.identifier == identifier, DataElement.version == version)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"数据元 {identifier} 版本 {version} 不存在")
    return row


