"""Catalog business rules: registering, changing and withdrawing datasets under 一数一源一标准.

Plain Python over a SQLAlchemy session. Callers own the transaction (the session's unit of work); every function
either completes its change or raises a DomainError, after which the caller rolls back and nothing is stored.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.auth import Principal
from catalog.enums import DatasetStatus, ItemSource, NationalLevel, ShareMethod
from catalog.errors import AuthoritativeSourceConflict, CatalogRuleError, Conflict, NotFound, RuleViolation
from catalog.federation.models import refuse_local_change
from catalog.models import AuthoritativeSource, CatalogState, DataElement, DataItem, Dataset, Department, utcnow
from catalog.permissions import (
    check_create_dataset,
    check_read_dataset,
    check_transfer_dataset,
    check_update_dataset,
    check_withdraw_dataset,
    require_principal,
)
from catalog.rules import DatasetDraft, ResolvedItem, check_dataset
from catalog.schemas import DataItemIn, DatasetCreate, DatasetUpdate
from catalog.search import CatalogSearch, document_fields

_CODE_SEQ = re.compile(r"-(\d{5})$")


# ---------------------------------------------------------------- lookups
def get_department(session: Session, code: str) -> Department:
    dept = session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
    if dept is None:
        raise NotFound(f"部门 {code} 不存在")
    return dept


def find_dataset(session: Session, code: str) -> Dataset:
    dataset = session.execute(select(Dataset).where(Dataset.code == code)).unique().scalar_one_or_none()
    if dataset is None:
        raise NotFound(f"资源 {code} 不存在")
    return dataset


def get_dataset(session: Session, principal: Principal | None, code: str) -> Dataset:
    dataset = find_dataset(session, code)
    check_read_dataset(principal, dataset)
    return dataset


def resolve_element(session: Session, identifier: str, version: str | None) -> DataElement | None:
    query = select(DataElement).where(DataElement.identifier == identifier)
    if version:
        return session.execute(query.where(DataElement.version == version)).scalar_one_or_none()
    versions = session.execute(query).scalars().all()
    return max(versions, key=lambda e: _version_key(e.version), default=None)


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-]", version))


def authoritative_source(session: Session, identifier: str) -> AuthoritativeSource | None:
    return session.get(AuthoritativeSource, identifier)


def describe_source(src: AuthoritativeSource) -> str:
    return f"{src.department.name}「{src.dataset.name}」({src.dataset.code})"


def source_conflict(element: DataElement, source: AuthoritativeSource, item_name: str,
                    index: int) -> AuthoritativeSourceConflict:
    return AuthoritativeSourceConflict(
        f"数据元「{element.name}」({element.identifier}) 已有权威来源：{describe_source(source)}。"
        f"一数一源：请将数据项「{item_name}」登记为对该来源的引用 (source: reference)",
        field=f"items.{index}.source",
        element=element.identifier,
        existing_source={"dataset_code": source.dataset.code, "dataset_name": source.dataset.name,
                          "department_code": source.department.code, "department_name": source.department.name},
    )


def bump_generation(session: Session) -> None:
    """Tell every process's search snapshot that the catalog changed (same transaction as the change)."""
    session.execute(
        update(CatalogState).where(CatalogState.id == 1).values(generation=CatalogState.generation + 1,
                                                                updated_at=utcnow())
    )


# ---------------------------------------------------------------- items and 一数一源
def _resolve_items(session: Session, dataset: Dataset | None, items: list[DataItemIn]) -> tuple[
    list[ResolvedItem], list[RuleViolation], dict[int, AuthoritativeSource | None]
]:
    """Bind each item to one data element version (一标准) and check its source claim (一数一源).

    Returns the resolved items, rule violations (422), and for each reference item the source it points at.
    Raises AuthoritativeSourceConflict (409) when an item claims an element another dataset already sources.
    """
    resolved: list[ResolvedItem] = []
    violations: list[RuleViolation] = []
    references: dict[int, AuthoritativeSource | None] = {}
    for index, item in enumerate(items):
        element = resolve_element(session, item.element, item.element_version)
        if element is None:
            what = f"{item.element} 版本 {item.element_version}" if item.element_version else item.element
            violations.append(RuleViolation(f"items.{index}.element", "items.unknown_element",
                                            f"数据项「{item.name}」引用的数据元 {what} 不在标准库中"))
            continue
        source = authoritative_source(session, element.identifier)
        if item.source == ItemSource.authoritative:
            if source is not None and (dataset is None or source.dataset_id != dataset.id):
                raise source_conflict(element, source, item.name, index)
            if item.reference:
                violations.append(RuleViolation(f"items.{index}.reference", "items.reference_on_authoritative",
                                                 f"数据项「{item.name}」登记为权威来源，不能同时填写 reference"))
        else:
            if source is None:
                violations.append(RuleViolation(
                    f"items.{index}.source", "items.reference_without_source",
                    f"数据元「{element.name}」({element.identifier}) 尚无权威来源，数据项「{item.name}」无法登记为引用；"
                    "请由其权威部门先行登记，或将本数据项登记为权威来源 (authoritative)"))
            elif dataset is not None and source.dataset_id == dataset.id:
                references[index] = source  # a second copy inside the source dataset itself
            elif item.reference and item.reference != source.dataset.code:
                violations.append(RuleViolation(
                    f"items.{index}.reference", "items.reference_not_source",
                    f"数据元「{element.name}」的权威来源是 {describe_source(source)}，不是 {item.reference}"))
            else:
                references[index] = source
        resolved.append(ResolvedItem(index, item.code, item.name, element, item.source, item.length, item.is_key))
    return resolved, violations, references


def _apply_items(session: Session, dataset: Dataset, items: list[DataItemIn], resolved: list[ResolvedItem],
                 references: dict[int, AuthoritativeSource | None]) -> None:
    """Make the dataset's items and its authoritative claims match `items` (keyed by item code)."""
    existing = {i.code: i for i in dataset.items}
    wanted_codes = {i.code for i in items}
    for code, old in existing.items():
        if code not in wanted_codes or _claims_change(old, items):
            _release_claim(session, old)
    for code, old in list(existing.items()):
        if code not in wanted_codes:
            dataset.items.remove(old)
    session.flush()

    by_index = {r.index: r for r in resolved}
    for position, item in enumerate(items):
        r = by_index[position]
        row = existing.get(item.code) or DataItem(code=item.code)
        if row.id is None:
            dataset.items.append(row)
        row.position = position
        row.name = item.name
        row.data_element_id = r.element.id
        row.data_element = r.element
        row.data_type = r.element.data_type
        row.length = item.length if item.length is not None else r.element.max_length
        row.required = item.required
        row.is_key = item.is_key
        row.sensitivity = r.element.sensitivity
        row.security_grade = r.element.security_grade
        row.source = item.source
        src = references.get(position)
        row.reference_item_id = src.item_id if src is not None else None
    session.flush()

    for position, item in enumerate(items):
        if item.source != ItemSource.authoritative:
            continue
        row = next(i for i in dataset.items if i.code == item.code)
        element = by_index[position].element
        current = authoritative_source(session, element.identifier)
        if current is None:
            # Inserted, never upserted: the primary key refuses a claim that a concurrent transaction made first.
            session.add(AuthoritativeSource(element_identifier=element.identifier, item_id=row.id,
                                            dataset_id=dataset.id, department_id=dataset.department_id))
        elif current.dataset_id != dataset.id:
            # Claimed by another dataset since our check (a concurrent transaction committed in between).
            raise source_conflict(element, current, item.name, position)
        elif current.item_id != row.id:
            current.item_id = row.id  # moved to another item of the same dataset
    session.flush()


def _claims_change(old: DataItem, items: list[DataItemIn]) -> bool:
    new = next(i for i in items if i.code == old.code)
    return old.source == ItemSource.authoritative and (
        new.source != ItemSource.authoritative or new.element != old.data_element.identifier
    )


def _release_claim(session: Session, item: DataItem) -> None:
    """Drop an item's authoritative claim — refused while other datasets reference it."""
    if item.source != ItemSource.authoritative or item.id is None:
        return
    dependants = session.execute(
        select(Dataset.code, Dataset.name).join(DataItem, DataItem.dataset_id == Dataset.id)
        .where(DataItem.reference_item_id == item.id, Dataset.id != item.dataset_id)
        .where(Dataset.status == DatasetStatus.published)
    ).all()
    if dependants:
        names = "、".join(f"「{n}」({c})" for c, n in dependants[:10])
        raise Conflict(
            f"数据项「{item.name}」是数据元「{item.data_element.name}」的权威来源，仍被 {len(dependants)} 个资源引用："
            f"{names}。请先由大数据局协调变更来源，再撤销该数据项",
            dependants=[c for c, _ in dependants],
        )
    session.execute(AuthoritativeSource.__table__.delete().where(AuthoritativeSource.item_id == item.id))
    # Copies inside the same dataset lose their anchor with it.
    session.execute(update(DataItem).where(DataItem.reference_item_id == item.id).values(reference_item_id=None))


# ---------------------------------------------------------------- dataset lifecycle
def _next_code(session: Session, department: Department) -> str:
    codes = session.execute(select(Dataset.code).where(Dataset.code.like(f"{department.code}-%"))).scalars()
    numbers = [int(m.group(1)) for c in codes if (m := _CODE_SEQ.search(c))]
    return f"{department.code}-{max(numbers, default=0) + 1:05d}"


def _draft(dataset: Dataset, department: Department) -> DatasetDraft:
    return DatasetDraft(dataset.code, department.code, dataset.category, dataset.base_library, dataset.share_type,
                        dataset.share_condition, dataset.open_type, dataset.open_condition, dataset.security_grade)


def _check_related(session: Session, codes: Iterable[str], own_code: str) -> list[RuleViolation]:
    codes = [c for c in codes if c != own_code]
    if not codes:
        return []
    known = set(session.execute(select(Dataset.code).where(Dataset.code.in_(codes))).scalars())
    unknown = [c for c in codes if c not in known]
    if unknown:
        return [RuleViolation("related", "related.unknown", "相关资源不存在：" + "、".join(unknown))]
    return []


_PLAIN_FIELDS = ("name", "summary", "keywords", "category", "topic", "contact_name", "contact_phone",
                 "share_type", "share_condition", "share_method", "open_type", "open_condition", "update_cycle",
                 "security_grade", "national_level", "release_date", "related")


def _enum_value(v):  # noqa: ANN001, ANN202
    return v.value if hasattr(v, "value") else v


def create_dataset(session: Session, search: CatalogSearch, principal: Principal | None,
                   body: DatasetCreate) -> Dataset:
    if body.department:
        department = get_department(session, body.department)
    else:
        department = session.get(Department, require_principal(principal).department_id)
    principal = check_create_dataset(principal, department)

    code = body.code or _next_code(session, department)
    if session.execute(select(Dataset.id).where(Dataset.code == code)).first():
        raise Conflict(f"资源代码 {code} 已被使用", field="code")
    dataset = Dataset(code=code, department_id=department.id, department=department, created_by_id=principal.user_id,
                      status=DatasetStatus.published, summary="", keywords=[], related=[],
                      share_method=ShareMethod.api, national_level=NationalLevel.general)
    for name in _PLAIN_FIELDS:
        value = getattr(body, name)
        if value is not None:
            setattr(dataset, name, value)
    dataset.base_library = _enum_value(body.base_library)
    return _save(session, search, dataset, department, body.items, new=True)


def update_dataset(session: Session, search: CatalogSearch, principal: Principal | None, code: str,
                   body: DatasetUpdate) -> Dataset:
    dataset = find_dataset(session, code)
    principal = check_update_dataset(principal, dataset)
    refuse_local_change(session, dataset, "修改")
    if dataset.status == DatasetStatus.withdrawn:
        raise Conflict(f"资源 {code} 已撤销，不能修改")
    department = dataset.department
    changes = body.model_dump(exclude_unset=True)
    if "department" in changes and body.department and body.department != department.code:
        check_transfer_dataset(principal)
        department = get_department(session, body.department)
    for name in _PLAIN_FIELDS:
        if name in changes:
            setattr(dataset, name, getattr(body, name))
    if "base_library" in changes:
        dataset.base_library = _enum_value(body.base_library)
    if dataset.keywords is None:
        dataset.keywords = []
    if dataset.related is None:
        dataset.related = []
    if department.id != dataset.department_id:
        dataset.department_id = department.id
        dataset.department = department
        session.execute(update(AuthoritativeSource).where(AuthoritativeSource.dataset_id == dataset.id)
                        .values(department_id=department.id))
    items = body.items if body.items is not None else [_item_in(i) for i in dataset.items]
    return _save(session, search, dataset, department, items, new=False)


def _item_in(item: DataItem) -> DataItemIn:
    return DataItemIn(code=item.code, name=item.name, element=item.data_element.identifier,
                      element_version=item.data_element.version, length=item.length, required=item.required,
                      is_key=item.is_key, source=item.source)


def _save(session: Session, search: CatalogSearch, dataset: Dataset, department: Department,
          items: list[DataItemIn], new: bool) -> Dataset:
    resolved, violations, references = _resolve_items(session, None if new else dataset, items)
    violations += check_dataset(_draft(dataset, department), resolved, new=new)
    violations += _check_related(session, dataset.related or [], dataset.code)
    if violations:
        raise CatalogRuleError(violations)
    if new:
        session.add(dataset)
    else:
        dataset.updated_at = utcnow()  # an items-only change must move metadata_modified too (CKAN clients, harvest)
    code = dataset.code
    try:
        session.flush()
        _apply_items(session, dataset, items, resolved, references)
    except IntegrityError as exc:
        # A concurrent transaction won the race for a claim or the code; report it like the checks above would.
        session.rollback()
        _raise_lost_race(session, code, resolved, items, exc)
    reindex(session, search, dataset)
    bump_generation(session)
    return dataset


def _raise_lost_race(session: Session, code: str, resolved: list[ResolvedItem], items: list[DataItemIn],
                     exc: IntegrityError) -> None:
    for r in resolved:
        if items[r.index].source == ItemSource.authoritative:
            src = authoritative_source(session, r.element.identifier)
            if src is not None and src.dataset.code != code:
                raise source_conflict(r.element, src, r.name, r.index) from exc
    if session.execute(select(Dataset.id).where(Dataset.code == code)).first():
        raise Conflict(f"资源代码 {code} 已被使用", field="code") from exc
    raise exc


def withdraw_dataset(session: Session, search: CatalogSearch, principal: Principal | None, code: str,
                     reason: str) -> Dataset:
    dataset = find_dataset(session, code)
    check_withdraw_dataset(principal, dataset)
    refuse_local_change(session, dataset, "撤销")
    if not reason.strip():
        raise CatalogRuleError([RuleViolation("reason", "withdraw.reason_required", "撤销资源须说明原因 reason")])
    if dataset.status == DatasetStatus.withdrawn:
        raise Conflict(f"资源 {code} 已于 {dataset.withdrawn_at:%Y-%m-%d} 撤销")
    for item in dataset.items:
        _release_claim(session, item)
    dataset.status = DatasetStatus.withdrawn
    dataset.withdrawn_at = utcnow()
    dataset.withdrawn_reason = reason.strip()
    session.flush()
    search.backend.delete(session, dataset.id)
    bump_generation(session)
    return dataset


def reindex(session: Session, search: CatalogSearch, dataset: Dataset) -> None:
    item_words = [w for i in dataset.items for w in (i.name, i.data_element.name)]
    search.backend.upsert(session, dataset.id, document_fields(
        dataset.name, dataset.keywords or [], item_words, dataset.summary or "", dataset.department.name))


def count_datasets(session: Session) -> int:
    return session.execute(select(func.count(Dataset.id))).scalar_one()
