"""A catalog dataset ↔ a CKAN package, a published version ↔ CKAN resources, departments ↔ organizations.

Choices (what a CKAN client sees):
- package `id` is the 资源代码 as catalogued (`GAJ-00001`), `name` its lowercase slug (`gaj-00001`); both are
  accepted wherever CKAN takes "id or name", in any letter case. They never change (a transfer keeps the code).
- `title` = 资源名称, `notes` = 资源摘要, `tags` = 关键词, `organization` = the provider department
  (`name` = lowercase department code, `id` = the code), `maintainer` = contact person, `author` = department name.
- `groups` = the 分类 (基础库 / 主题库 / 专题库 / 部门库) and, when set, the topic (主题, e.g. 市场监管); a group's
  `name` is that Chinese term itself.
- `private` = not open to the public (禁止开放); `license_id` follows the 开放类型 (see LICENSES); `isopen` =
  无条件开放; `state` is "deleted" for a withdrawn dataset (only its department and the steward still see it).
- `extras` ([{key, value}], strings) carry 共享类型 / 共享条件 / 共享方式 / 开放类型 / 开放条件 / 安全分级 / 数据分级 /
  更新周期 / 基础库 / 联系电话 / 发布日期 / 相关资源 (writable) and 资源代码 / 提供部门 / 归集状态 / 最新版本 / 数据量 /
  权威来源数据项 / 引用数据项 (一数一源 facts, read-only: ignored on input).
- The data items travel in a custom top-level `items` list (not in an extra: CKAN extras are flat strings, and an
  item is a structure). Each item shows code, name, element (数据元), element_version, element_name, data_type,
  length, required, is_key, sensitivity, security_grade, source (authoritative | reference) and reference (the
  source dataset's code for a reference). On input the DataItemIn keys are read and the read-only ones ignored, so
  package_show → package_update round-trips.
- Our own field names (share_type, open_type, security_grade, update_cycle, category, topic, …) are also accepted as
  top-level keys on input (like ckanext-scheming fields); a value given both ways must agree.
- Resources: every published version × format (CSV, JSON, Parquet) is one resource, newest version first, with a
  stable id `<slug>-v<version>-<format>` (e.g. `gaj-00001-v2-csv`); the url is the open-data download for
  无条件开放 data and the sharing gateway otherwise; `datastore_active` is true (datastore_search serves it).
- Resources, `private`, `license_id`, `state` and the read-only extras are derived, never written: package_create /
  update ignore them. Data arrives only through resource_create with an upload (归集).
- Validation Error keys are CKAN's field names where one exists (name, title, notes, tags, owner_org, groups,
  maintainer) and our field names otherwise (share_type, items.0.element, …).
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from catalog.enums import Category, DatasetStatus, ItemSource, OpenType
from catalog.models import DataItem, Dataset, DatasetVersion, Department

from catalog.ckan.errors import CkanValidationError, as_list, invalid, loads_if_text

DATASET_CODE = re.compile(r"^([A-Za-z][A-Za-z0-9]{1,15})-([0-9]{5})$")
DEPARTMENT_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9]{1,15}$")
RESOURCE_ID = re.compile(r"^([A-Za-z][A-Za-z0-9]{1,15}-[0-9]{5})-v([0-9]{1,9})-(csv|json|parquet)$", re.IGNORECASE)
FORMATS = (("csv", "CSV", "text/csv"), ("json", "JSON", "application/json"),
           ("parquet", "Parquet", "application/vnd.apache.parquet"))
CATEGORY_VALUES = tuple(c.value for c in Category)

LICENSES = {
    OpenType.unconditional.value: {
        "id": "odh-open-unconditional", "title": "无条件开放：可直接获取和使用，使用时须注明数据来源",
        "od_conformance": "approved",
    },
    OpenType.restricted.value: {
        "id": "odh-open-restricted", "title": "受限开放：须提交开放申请，经数据提供部门批准后在授权范围内使用（脱敏）",
        "od_conformance": "not reviewed",
    },
    OpenType.closed.value: {
        "id": "odh-not-open", "title": "禁止开放：仅在政务部门间按共享属性共享，不向社会开放",
        "od_conformance": "not reviewed",
    },
}
LICENSE_OPEN_TYPE = {lic["id"]: open_type for open_type, lic in LICENSES.items()}

# extras key → our field (writable)
EXTRA_FIELDS: dict[str, str] = {
    "共享类型": "share_type", "共享条件": "share_condition", "共享方式": "share_method",
    "开放类型": "open_type", "开放条件": "open_condition", "安全分级": "security_grade",
    "数据分级": "national_level", "更新周期": "update_cycle", "基础库": "base_library",
    "联系电话": "contact_phone", "发布日期": "release_date", "相关资源": "related",
}
READ_ONLY_EXTRAS = ("资源代码", "提供部门", "归集状态", "最新版本", "数据量", "权威来源数据项", "引用数据项", "撤销原因")
# our fields also accepted as top-level keys
TOP_LEVEL_FIELDS = (*EXTRA_FIELDS.values(), "category", "topic", "contact_name")
ITEM_INPUT_KEYS = ("code", "name", "element", "element_version", "length", "required", "is_key", "source", "reference")
ITEM_OUTPUT_ONLY = ("element_name", "data_type", "sensitivity", "security_grade", "authoritative_source")
# our field → the key a CKAN client knows it by (Validation Error keys)
CKAN_KEY = {"code": "name", "name": "title", "summary": "notes", "keywords": "tags", "department": "owner_org",
            "category": "groups", "topic": "groups", "contact_name": "maintainer"}


def _v(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def iso(value: dt.datetime | dt.date | None) -> str | None:
    """CKAN's timestamps: ISO 8601 in UTC without an offset."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    return value.isoformat()


def slug(code: str) -> str:
    return code.lower()


def dataset_code(id_or_name: Any) -> str | None:
    """The 资源代码 a package id or name stands for, or None when it cannot be one."""
    if not isinstance(id_or_name, str):
        return None
    match = DATASET_CODE.match(id_or_name.strip())
    return f"{match.group(1).upper()}-{match.group(2)}" if match else None


def department_code(id_or_name: Any) -> str | None:
    if isinstance(id_or_name, dict):
        id_or_name = id_or_name.get("name") or id_or_name.get("id")
    if not isinstance(id_or_name, str) or not DEPARTMENT_CODE.match(id_or_name.strip()):
        return None
    return id_or_name.strip().upper()


def parse_resource_id(resource_id: Any) -> tuple[str, int, str] | None:
    """`gaj-00001-v2-csv` → ("GAJ-00001", 2, "csv")."""
    if not isinstance(resource_id, str):
        return None
    match = RESOURCE_ID.match(resource_id.strip())
    if not match:
        return None
    return match.group(1).upper(), int(match.group(2)), match.group(3).lower()


# ---------------------------------------------------------------- output
def license_dict(open_type: str) -> dict[str, Any]:
    lic = LICENSES[open_type]
    return {"id": lic["id"], "title": lic["title"], "url": "", "status": "active", "maintainer": "opendata-hub",
            "od_conformance": lic["od_conformance"], "osd_conformance": "not reviewed", "domain_content": False,
            "domain_data": True, "domain_software": False, "family": "", "is_generic": False,
            "is_okd_compliant": open_type == OpenType.unconditional.value, "is_osi_compliant": False}


def organization_dict(dept: Department, package_count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": dept.code, "name": slug(dept.code), "title": dept.name, "display_name": dept.name,
        "description": dept.short_name or "", "type": "organization", "is_organization": True,
        "state": "active", "approval_status": "approved", "image_url": "", "image_display_url": "",
        "created": iso(dept.created_at),
    }
    if package_count is not None:
        out["package_count"] = package_count
    return out


def organization_detail(dept: Department, package_count: int) -> dict[str, Any]:
    out = organization_dict(dept, package_count)
    extras = [{"key": "部门代码", "value": dept.code}]
    if dept.short_name:
        extras.append({"key": "简称", "value": dept.short_name})
    if dept.parent_id and dept.parent is not None:
        extras.append({"key": "上级部门", "value": f"{dept.parent.name} ({dept.parent.code})"})
        out["groups"] = [{"name": slug(dept.parent.code), "capacity": "public"}]  # ckanext-hierarchy's shape
    else:
        out["groups"] = []
    out["extras"] = extras
    out["tags"] = []
    out["users"] = []
    return out


def group_dict(name: str, package_count: int | None = None) -> dict[str, Any]:
    kind = "资源分类" if name in CATEGORY_VALUES else "主题"
    out: dict[str, Any] = {
        "id": name, "name": name, "title": name, "display_name": name, "description": f"{kind}：{name}",
        "type": "group", "is_organization": False, "state": "active", "approval_status": "approved",
        "image_url": "", "image_display_url": "",
    }
    if package_count is not None:
        out["package_count"] = package_count
    return out


def _group_ref(name: str) -> dict[str, Any]:
    kind = "资源分类" if name in CATEGORY_VALUES else "主题"
    return {"id": name, "name": name, "title": name, "display_name": name, "description": f"{kind}：{name}",
            "image_display_url": ""}


def tag_dict(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "display_name": name, "state": "active", "vocabulary_id": None}


def resource_url(base: str, dataset: Dataset, version: int, fmt: str) -> str:
    code = quote(dataset.code)
    if _v(dataset.open_type) == OpenType.unconditional.value:
        return f"{base}/open/v1/datasets/{code}/download?format={fmt}&version={version}"
    return f"{base}/gateway/v1/datasets/{code}/rows?format={fmt}&version={version}"


def resource_dicts(base: str, dataset: Dataset, versions: Iterable[DatasetVersion]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in sorted(versions, key=lambda v: -v.version):
        for fmt, label, mimetype in FORMATS:
            out.append(resource_dict(base, dataset, v, fmt, label, mimetype, len(out)))
    return out


def resource_dict(base: str, dataset: Dataset, v: DatasetVersion, fmt: str, label: str, mimetype: str,
                  position: int) -> dict[str, Any]:
    access = ("无条件开放：可匿名下载" if _v(dataset.open_type) == OpenType.unconditional.value
              else "经共享网关按授权范围读取（需授权凭证 odg_…）")
    return {
        "id": f"{slug(dataset.code)}-v{v.version}-{fmt}", "package_id": dataset.code,
        "name": f"{dataset.name} 第{v.version}版 ({label})",
        "description": f"第 {v.version} 版，{v.row_count} 行，归集于 {iso(v.collected_at)}。{access}。",
        "format": label, "mimetype": mimetype, "url": resource_url(base, dataset, v.version, fmt),
        "url_type": None, "created": iso(v.collected_at), "last_modified": iso(v.collected_at),
        "metadata_modified": iso(v.collected_at), "size": v.byte_size if fmt == "parquet" else None,
        "hash": f"sha256:{v.checksum}" if fmt == "parquet" else "", "state": "active", "position": position,
        "datastore_active": True, "cache_url": None, "resource_type": None,
        "version": v.version, "row_count": v.row_count,
    }


def item_dict(item: DataItem) -> dict[str, Any]:
    el = item.data_element
    reference = None
    if _v(item.source) == ItemSource.reference.value and item.reference_item is not None:
        reference = item.reference_item.dataset.code
    return {"code": item.code, "name": item.name, "element": el.identifier, "element_version": el.version,
            "element_name": el.name, "data_type": _v(item.data_type), "length": item.length,
            "required": item.required, "is_key": item.is_key, "sensitivity": _v(item.sensitivity),
            "security_grade": _v(item.security_grade), "source": _v(item.source), "reference": reference}


def _extras(dataset: Dataset, items: list[DataItem]) -> list[dict[str, str]]:
    values: list[tuple[str, Any]] = [("资源代码", dataset.code), ("提供部门", dataset.department.name)]
    for key, field in EXTRA_FIELDS.items():
        value = getattr(dataset, field)
        if field == "related":
            value = ",".join(value or []) or None
        elif isinstance(value, dt.date):
            value = value.isoformat()
        values.append((key, _v(value)))
    values += [("归集状态", _v(dataset.collection_status)),
               ("最新版本", dataset.latest_version), ("数据量", dataset.row_count)]
    authoritative = [f"{i.name}({i.code}, {i.data_element.identifier})" for i in items
                     if _v(i.source) == ItemSource.authoritative.value]
    references = []
    for i in items:
        if _v(i.source) == ItemSource.reference.value:
            src = i.reference_item.dataset if i.reference_item is not None else None
            where = f"{src.department.name}「{src.name}」({src.code})" if src is not None else "（来源未登记）"
            references.append(f"{i.name}({i.code}, {i.data_element.identifier}) → {where}")
    values += [("权威来源数据项", "、".join(authoritative) or None), ("引用数据项", "、".join(references) or None)]
    if dataset.withdrawn_reason:
        values.append(("撤销原因", dataset.withdrawn_reason))
    return [{"key": k, "value": str(v)} for k, v in values if v is not None and v != ""]


def package_dict(base: str, dataset: Dataset, versions: Iterable[DatasetVersion]) -> dict[str, Any]:
    items = sorted(dataset.items, key=lambda i: i.position)
    open_type = _v(dataset.open_type)
    lic = LICENSES[open_type]
    groups = [_group_ref(_v(dataset.category))] + ([_group_ref(dataset.topic)] if dataset.topic else [])
    keywords = list(dataset.keywords or [])
    resources = resource_dicts(base, dataset, versions)
    page = (f"{base}/open/v1/datasets/{quote(dataset.code)}" if open_type != OpenType.closed.value
            else f"{base}/api/v1/datasets/{quote(dataset.code)}")
    return {
        "id": dataset.code, "name": slug(dataset.code), "title": dataset.name, "notes": dataset.summary or "",
        "type": "dataset",
        "state": "deleted" if _v(dataset.status) == DatasetStatus.withdrawn.value else "active",
        "private": open_type == OpenType.closed.value, "isopen": open_type == OpenType.unconditional.value,
        "license_id": lic["id"], "license_title": lic["title"], "license_url": "",
        "author": dataset.department.name, "author_email": None,
        "maintainer": dataset.contact_name, "maintainer_email": None,
        "url": page, "version": str(dataset.latest_version) if dataset.latest_version else None,
        "metadata_created": iso(dataset.created_at), "metadata_modified": iso(dataset.updated_at),
        "creator_user_id": str(dataset.created_by_id) if dataset.created_by_id else None,
        "owner_org": dataset.department.code, "organization": organization_dict(dataset.department),
        "tags": [tag_dict(k) for k in keywords], "num_tags": len(keywords),
        "groups": groups, "extras": _extras(dataset, items),
        "resources": resources, "num_resources": len(resources),
        "relationships_as_object": [], "relationships_as_subject": [],
        "items": [item_dict(i) for i in items],
    }


# ---------------------------------------------------------------- input
def _names(values: Any, key: str) -> list[str]:
    """Tags / groups as sent: [{"name": …}], ["…"] or "a,b" text."""
    out = []
    for value in as_list(values, key):
        if isinstance(value, dict):
            value = value.get("name") or value.get("id")
        if not isinstance(value, str) or not value.strip():
            raise invalid(key, "每一项应为名称字符串或含 name 的对象")
        out.append(value.strip())
    return out


def _extras_in(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    raw = loads_if_text(data.get("extras"), "extras")
    if raw is None or raw == "":
        return {}
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        for entry in raw:
            if not isinstance(entry, dict) or "key" not in entry:
                errors.setdefault("extras", []).append("extras 的每一项应为 {\"key\": …, \"value\": …}")
                return {}
            if entry.get("deleted") in (True, "on", "true", "True"):
                continue
            pairs.append((entry.get("key"), entry.get("value")))
    else:
        errors.setdefault("extras", []).append("extras 应为 [{\"key\": …, \"value\": …}] 列表")
        return {}
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in READ_ONLY_EXTRAS:
            continue
        field = EXTRA_FIELDS.get(key) if isinstance(key, str) else None
        if field is None:
            allowed = "、".join(EXTRA_FIELDS)
            errors.setdefault("extras", []).append(f"不支持的扩展字段「{key}」；可写的扩展字段为：{allowed}")
            continue
        if value is not None and not isinstance(value, (str, int, float)):
            errors.setdefault("extras", []).append(f"扩展字段「{key}」的值应为字符串")
            continue
        out[field] = value
    return out


def _item_in(raw: Any, index: int, errors: dict[str, list[str]]) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        errors.setdefault(f"items.{index}", []).append("数据项应为对象")
        return None
    unknown = [k for k in raw if k not in ITEM_INPUT_KEYS and k not in ITEM_OUTPUT_ONLY]
    if unknown:
        errors.setdefault(f"items.{index}", []).append(
            f"不支持的数据项字段：{'、'.join(map(str, unknown))}；可写字段为 {', '.join(ITEM_INPUT_KEYS)}")
    return {k: raw[k] for k in ITEM_INPUT_KEYS if k in raw and not (k == "reference" and raw[k] in (None, ""))}


def _normalise(field: str, value: Any) -> Any:
    """Text from extras or forms into what the schema field expects ("" clears an optional value)."""
    if isinstance(value, str) and not value.strip():
        return None
    if field == "related":
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value
    return value


def package_input(data: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    """A CKAN package dict → our DatasetCreate / DatasetUpdate fields.

    replace=True (package_update): every writable field not given is cleared (CKAN replaces the whole dataset),
    except the items and the department, which are kept when left out (a dataset always has items and a provider).
    Raises CkanValidationError naming every problem at once.
    """
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}

    if data.get("name") not in (None, ""):
        code = dataset_code(data["name"])
        if code is None:
            errors.setdefault("name", []).append("name 应为资源代码形式，如 scjg-00099（部门代码-五位序号）")
        else:
            out["code"] = code
    if data.get("title") not in (None, ""):
        out["name"] = data["title"]
    if "notes" in data or replace:
        out["summary"] = data.get("notes") or ""
    if "tags" in data or "tag_string" in data or replace:
        try:
            tags = _names(data.get("tags"), "tags") if "tags" in data else []
            if "tag_string" in data and data.get("tag_string"):
                tags += [t.strip() for t in str(data["tag_string"]).split(",") if t.strip()]
            out["keywords"] = list(dict.fromkeys(tags))
        except CkanValidationError as exc:
            _merge(errors, exc.errors)
    owner = data.get("owner_org") or data.get("organization")
    if owner not in (None, ""):
        code = department_code(owner)
        if code is None:
            errors.setdefault("owner_org", []).append("owner_org 应为部门代码，如 gaj")
        else:
            out["department"] = code
    if "maintainer" in data or replace:
        out["contact_name"] = data.get("maintainer") or None

    fields: dict[str, Any] = {}
    from_groups: set[str] = set()
    if "groups" in data or replace:
        try:
            names = _names(data.get("groups"), "groups")
        except CkanValidationError as exc:
            _merge(errors, exc.errors)
            names = []
        categories = [n for n in names if n in CATEGORY_VALUES]
        topics = [n for n in names if n not in CATEGORY_VALUES]
        if len(categories) > 1 or len(topics) > 1:
            errors.setdefault("groups", []).append(
                "groups 至多包含一个分类（基础库/主题库/专题库/部门库）和一个主题")
        if categories:
            fields["category"] = categories[0]
            from_groups.add("category")
        fields["topic"] = topics[0] if topics else None
        if topics:
            from_groups.add("topic")
    extras = _extras_in(data, errors)
    for field, value in extras.items():
        fields[field] = _normalise(field, value)
    for field in TOP_LEVEL_FIELDS:
        if field in data:
            value = _normalise(field, data[field])
            source_given = field in extras or field in from_groups
            if source_given and fields.get(field) != value:
                where = "groups" if field in ("category", "topic") else "extras"
                errors.setdefault(field, []).append(f"{field} 与 {where} 中的取值不一致")
            fields[field] = value
    if replace:
        for field in EXTRA_FIELDS.values():
            fields.setdefault(field, None)
        if fields.get("related") is None:
            fields["related"] = []
        for field, default in (("share_method", "接口"), ("national_level", "一般")):
            if fields.get(field) is None:
                fields[field] = default
    out.update(fields)

    if "items" in data and data["items"] not in (None, ""):
        raw_items = loads_if_text(data["items"], "items")
        if not isinstance(raw_items, list):
            errors.setdefault("items", []).append("items 应为数据项列表")
        else:
            items = [_item_in(raw, i, errors) for i, raw in enumerate(raw_items)]
            out["items"] = [i for i in items if i is not None]

    if replace:
        for field in ("name", "category", "share_type", "open_type", "update_cycle", "security_grade"):
            if out.get(field) is None:
                errors.setdefault(CKAN_KEY.get(field, field), []).append("Missing value")
    if errors:
        raise CkanValidationError(errors)
    return out


def _merge(errors: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for k, v in more.items():
        errors.setdefault(k, []).extend(v)


def ckan_key(field: str) -> str:
    """Our dotted field path (`items.2.element`, `open_type`, `keywords.0`) → the key a CKAN client knows."""
    head, _, rest = field.partition(".")
    if head in CKAN_KEY:
        return CKAN_KEY[head] if head != "items" else field
    if head == "body" and rest:
        return ckan_key(rest)
    return field
