"""A remote CKAN package → what a harvested local dataset holds (the inverse of catalog/ckan/mapping.py, tolerant).

A package from another instance of this product carries everything: 资源代码 as id, the department as organization,
our extras (共享类型 … 发布日期), the 分类 and topic as groups and the data items in `items`. A package from any
other CKAN carries less; what is missing gets a conservative default (see DEFAULTS) so that the local catalog rules
hold: 部门库, 有条件共享 "as the source catalog's rules say", 不定期, and 禁止开放 / L2 for a private package or
无条件开放 / L1 for a public one. Display text that does not fit is shortened (titles, tags); a value that decides
sharing or opening and cannot be read (e.g. 共享类型 "maybe") makes the package refused, never guessed.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pydantic

from catalog.ckan.mapping import CATEGORY_VALUES, EXTRA_FIELDS, dataset_code, department_code
from catalog.enums import ItemSource
from catalog.schemas import DataItemIn, DatasetFields

# Extras that mark a package as itself harvested from another catalog: "来源目录" is what this product is to show on
# harvested datasets (see the README's Federation section), the others are ckanext-harvest's. Only originals are
# harvested, so that provenance names the real source and two catalogs harvesting each other cannot loop.
HARVESTED_MARKERS = ("来源目录", "harvest_source_id", "harvest_object_id")

RULE_FIELDS = ("share_type", "share_condition", "share_method", "open_type", "open_condition", "update_cycle",
               "security_grade", "national_level", "base_library", "category")


class PackageProblem(Exception):
    """The package cannot become a local dataset (the reason is reported, the package skipped)."""


@dataclass
class RemoteItem:
    code: str
    name: str
    element: str
    element_version: str | None
    length: int | None
    required: bool
    is_key: bool
    remote_source: str  # authoritative | reference, at the remote
    remote_dataset: str | None  # remote id of the dataset holding the authoritative item (None: unknown)


@dataclass
class RemotePackage:
    remote_id: str
    remote_name: str
    modified: dt.datetime | None
    state: str  # active | deleted
    org_key: str  # the remote organization's name (or id); "" when the package has none
    org_title: str | None
    org_description: str | None
    remote_code: str | None  # the 资源代码 when the remote names its packages as we do (GAJ-00001)
    fields: dict[str, Any] = field(default_factory=dict)
    related: list[str] = field(default_factory=list)  # remote 资源代码 of related datasets
    items: list[RemoteItem] = field(default_factory=list)
    remote_reason: str | None = None  # the remote's withdrawal reason (撤销原因), when it says
    harvested_from: str | None = None  # set when the package is itself a harvested copy (HARVESTED_MARKERS)


def parse_modified(value: Any) -> dt.datetime | None:
    """CKAN's metadata_modified (ISO 8601, UTC, usually without an offset) → an aware datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def solr_time(value: dt.datetime) -> str:
    """A range bound for Solr, rounded down to the millisecond (Solr keeps dates to the millisecond, the package
    dict to the microsecond: a bound in microseconds would skip a package stored as that same millisecond)."""
    value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = " ".join(value.split()) if "\n" not in value else value.strip()
    return value or None


def _cut(value: str | None, limit: int) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def _extras(pkg: dict[str, Any]) -> dict[str, Any]:
    raw = pkg.get("extras") or []
    out: dict[str, Any] = {}
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, list):
        for entry in raw:
            if isinstance(entry, dict) and isinstance(entry.get("key"), str) and entry.get("state") != "deleted":
                out[entry["key"]] = entry.get("value")
    return out


def _names(values: Any) -> list[str]:
    out = []
    for value in values if isinstance(values, list) else []:
        if isinstance(value, dict):
            value = value.get("name") or value.get("display_name")
        if isinstance(value, str) and value.strip():
            out.append(value.strip())
    return out


def _organization(pkg: dict[str, Any]) -> tuple[str, str | None, str | None]:
    org = pkg.get("organization")
    if isinstance(org, dict) and (org.get("name") or org.get("id")):
        key = str(org.get("name") or org.get("id"))
        return key, _text(org.get("title") or org.get("display_name")), _text(org.get("description"))
    owner = pkg.get("owner_org")
    if isinstance(owner, str) and owner.strip():
        return owner.strip(), None, None
    return "", None, None


def _items(pkg: dict[str, Any], remote_id: str) -> list[RemoteItem]:
    raw = pkg.get("items")
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise PackageProblem("items 不是数据项列表")
    out: list[RemoteItem] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise PackageProblem(f"items.{index} 不是数据项对象")
        source = entry.get("source") or ItemSource.authoritative.value
        if source not in (ItemSource.authoritative.value, ItemSource.reference.value):
            raise PackageProblem(f"items.{index}.source 取值「{source}」无法识别")
        try:
            item = DataItemIn.model_validate({
                "code": entry.get("code"), "name": entry.get("name"), "element": entry.get("element"),
                "element_version": _text(entry.get("element_version")), "length": entry.get("length"),
                "required": bool(entry.get("required")), "is_key": bool(entry.get("is_key")),
                "source": ItemSource.reference.value})
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise PackageProblem(f"items.{index}.{where} 不符合本地规范：{first.get('msg')}") from None
        reference = _text(entry.get("reference"))
        remote_dataset = remote_id if source == ItemSource.authoritative.value else reference
        out.append(RemoteItem(item.code, item.name, item.element, item.element_version, item.length,
                              item.required, item.is_key, source, remote_dataset))
    return out


def read_package(pkg: Any, source_title: str) -> RemotePackage:
    """Read one package dict; PackageProblem when it cannot be catalogued here."""
    if not isinstance(pkg, dict):
        raise PackageProblem("不是 CKAN 资源 (package) 对象")
    remote_id = _text(pkg.get("id")) or _text(pkg.get("name"))
    if remote_id is None or len(remote_id) > 128:
        raise PackageProblem("资源缺少 id")
    remote_name = _text(pkg.get("name")) or remote_id
    state = "deleted" if pkg.get("state") == "deleted" else "active"
    org_key, org_title, org_description = _organization(pkg)
    remote_code = dataset_code(remote_id) or dataset_code(remote_name)
    out = RemotePackage(remote_id=remote_id, remote_name=_cut(remote_name, 200) or remote_id,
                        modified=parse_modified(pkg.get("metadata_modified")), state=state,
                        org_key=_cut(org_key, 128) or "", org_title=_cut(org_title, 200),
                        org_description=org_description, remote_code=remote_code)
    extras = _extras(pkg)
    out.remote_reason = _text(extras.get("撤销原因"))
    marker = next((k for k in HARVESTED_MARKERS if extras.get(k) not in (None, "")), None)
    if marker is not None:
        out.harvested_from = f"{marker}={_cut(str(extras[marker]), 80)}"
    if state == "deleted":
        return out  # only its withdrawal matters

    values: dict[str, Any] = {}
    for key, name in EXTRA_FIELDS.items():
        value = extras.get(key, pkg.get(name))
        if name == "related":
            text = _text(value) if not isinstance(value, list) else ",".join(map(str, value))
            out.related = [c for c in (dataset_code(v.strip()) for v in (text or "").split(",")) if c]
            continue
        value = _text(value)
        if value is not None:
            values[name] = value
    groups = _names(pkg.get("groups"))
    categories = [g for g in groups if g in CATEGORY_VALUES]
    topics = [g for g in groups if g not in CATEGORY_VALUES]
    category = _text(pkg.get("category")) or (categories[0] if categories else None)
    values["category"] = category or "部门库"
    topic = _text(pkg.get("topic")) or (topics[0] if topics else None)
    if topic:
        values["topic"] = _cut(topic, 64)

    private = bool(pkg.get("private"))
    if "open_type" not in values:
        # Another CKAN: public with an open licence is 无条件开放 (then L1); anything else is not opened here.
        public = not private and bool(pkg.get("isopen")) and values.get("security_grade", "L1") == "L1"
        values["open_type"] = "无条件开放" if public else "禁止开放"
        values.setdefault("security_grade", "L1" if public else "L2")
    values.setdefault("security_grade", "L2")
    if "share_type" not in values:
        values["share_type"] = "有条件共享"
        values.setdefault("share_condition", f"按来源目录「{source_title}」的共享规定申请使用")
    values.setdefault("share_method", "接口")
    values.setdefault("update_cycle", "不定期")
    values.setdefault("national_level", "一般")
    if values.get("release_date"):
        values["release_date"] = values["release_date"][:10]

    values["name"] = _cut(_text(pkg.get("title")) or remote_name, 200)
    values["summary"] = _cut(_text(pkg.get("notes")) or "", 4000)
    tags = [t for t in _names(pkg.get("tags")) if len(t) <= 32]
    values["keywords"] = list(dict.fromkeys(tags))[:30]
    contact = _cut(_text(pkg.get("maintainer")), 64)
    if contact:
        values["contact_name"] = contact

    try:
        parsed = DatasetFields.model_validate(values)
    except pydantic.ValidationError as exc:
        bad = [e for e in exc.errors() if str((e.get("loc") or ("",))[0]) in RULE_FIELDS]
        if bad:
            where = "、".join(f"{e['loc'][0]}（{e.get('input')!s:.40}）" for e in bad)
            raise PackageProblem(f"无法识别的目录属性：{where}") from None
        for e in exc.errors():  # display fields: drop what does not fit rather than refuse the package
            values.pop(str(e["loc"][0]), None)
        try:
            parsed = DatasetFields.model_validate(values)
        except pydantic.ValidationError as again:
            raise PackageProblem(f"资源元数据不符合本地规范：{again.errors()[0].get('msg')}") from None
    out.fields = parsed.model_dump(exclude={"items", "related"}, exclude_none=False)
    out.fields["keywords"] = out.fields.get("keywords") or []
    out.fields["summary"] = out.fields.get("summary") or ""
    out.items = _items(pkg, remote_id)
    return out


def org_code(org_key: str) -> str | None:
    """The remote organization's department code when it is one (`gaj` → GAJ), else None."""
    return department_code(org_key) if org_key else None
