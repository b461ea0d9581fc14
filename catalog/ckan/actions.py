"""The CKAN actions, as plain functions `action(ctx, data_dict) -> result` over a session and the caller.

Every rule of the catalog still applies: visibility (catalog.permissions), 一数一源 and the catalog rules
(catalog.service), delivery (catalog.collection). Errors are raised as the catalog's DomainErrors or as
CkanValidationError / SearchQueryError; router.py turns them into CKAN's error envelope.
"""
from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from catalog import collection, service
from catalog.auth import Principal
from catalog.collection import CollectionRejected, Delivery
from catalog.db import Database
from catalog.enums import DatasetStatus, OpenType, Role
from catalog.errors import NotFound, PermissionDenied
from catalog.models import Dataset, DatasetVersion, Department, User
from catalog.permissions import check_read_dataset, check_update_dataset
from catalog.schemas import DatasetCreate, DatasetUpdate
from catalog.search import SORTS, CatalogSearch, SearchQuery
from catalog.search.engine import PUBLIC_OPEN_TYPES
from catalog.settings import Settings
from catalog.storage import storage_for

from catalog.ckan import mapping
from catalog.ckan.errors import (
    CkanValidationError,
    SearchQueryError,
    as_bool,
    as_int,
    as_list,
    as_str,
    invalid,
)

CKAN_VERSION = "2.11.0"  # the Action API generation whose shapes we reproduce (status_show)
MAX_ROWS = 1000  # package_search rows, as CKAN's ckan.search.rows_max
MAX_LIST = 1000  # package_list / organization_list / current_package_list_with_resources page size
DEFAULT_WITHDRAW_REASON = "通过 CKAN 接口 package_delete 撤销"


@dataclass
class Context:
    session: Session
    principal: Principal | None
    settings: Settings
    search: CatalogSearch
    db: Database
    base: str  # the site URL, no trailing slash
    runtime: Any = None  # sharing.gateway.GatewayRuntime (datastore_search)
    grant_token: str | None = None  # an `odg_…` credential sent instead of a user token
    client: str = "unknown"
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- visibility
def is_government(principal: Principal | None) -> bool:
    return principal is not None and not principal.is_external


def visible_open_types(principal: Principal | None, include_private: bool) -> tuple[str, ...] | None:
    """The 开放类型 a listing may show: the open catalog, unless a government user asks for private ones too."""
    if include_private and is_government(principal):
        return None
    return PUBLIC_OPEN_TYPES


def _published(query, open_types: tuple[str, ...] | None):  # noqa: ANN001, ANN202
    query = query.where(Dataset.status == DatasetStatus.published)
    if open_types is not None:
        query = query.where(Dataset.open_type.in_(open_types))
    return query


def find_package(ctx: Context, id_or_name: Any, key: str = "id") -> Dataset:
    if id_or_name is None or id_or_name == "":
        raise invalid(key, "Missing value")
    code = mapping.dataset_code(id_or_name)
    if code is None:
        raise NotFound(f"资源 {id_or_name} 不存在")
    dataset = service.find_dataset(ctx.session, code)
    check_read_dataset(ctx.principal, dataset)
    return dataset


def _versions(session: Session, ids: Iterable[int]) -> dict[int, list[DatasetVersion]]:
    ids = list(ids)
    out: dict[int, list[DatasetVersion]] = {i: [] for i in ids}
    if not ids:
        return out
    for v in session.execute(select(DatasetVersion).where(DatasetVersion.dataset_id.in_(ids))).scalars():
        out[v.dataset_id].append(v)
    return out


def load_datasets(session: Session, ids: list[int]) -> list[Dataset]:
    """Datasets in the given order, items loaded in one extra query (not one per dataset)."""
    if not ids:
        return []
    rows = session.execute(select(Dataset).where(Dataset.id.in_(ids)).options(selectinload(Dataset.items))
                           ).unique().scalars().all()
    by_id = {d.id: d for d in rows}
    return [by_id[i] for i in ids if i in by_id]


def package_dicts(ctx: Context, datasets: list[Dataset]) -> list[dict[str, Any]]:
    versions = _versions(ctx.session, [d.id for d in datasets])
    return [mapping.package_dict(ctx.base, d, versions[d.id]) for d in datasets]


def package_of(ctx: Context, dataset: Dataset) -> dict[str, Any]:
    return package_dicts(ctx, [dataset])[0]


# ---------------------------------------------------------------- site
def status_show(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Site information: title, URL, the CKAN API generation reproduced, extensions (datastore)."""
    return {"site_title": "opendata-hub 公共数据目录", "site_description": "示范市公共数据目录与共享平台",
            "site_url": ctx.base, "ckan_version": CKAN_VERSION, "error_emails_to": None,
            "locale_default": "zh_Hans_CN", "extensions": ["datastore", "opendata-hub"],
            "odh_version": "0.1.0"}


def site_read(ctx: Context, data: dict[str, Any]) -> bool:
    """Whether the caller may read the site: always true (anonymous callers see the open catalog)."""
    return True


def license_list(ctx: Context, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The licences: one per 开放类型 (无条件开放 / 受限开放 / 禁止开放)."""
    return [mapping.license_dict(o.value) for o in OpenType]


def help_show(ctx: Context, data: dict[str, Any]) -> str:
    """The documentation of an action (`name`)."""
    name = as_str(data, "name", required=True)
    entry = actions().get(name)
    if entry is None:
        raise NotFound(f"Action function not found: {name}")
    return (entry.fn.__doc__ or "").strip()


# ---------------------------------------------------------------- packages: read
def package_list(ctx: Context, data: dict[str, Any]) -> list[str]:
    """Names of the published datasets the caller may see (private ones only with include_private), by name."""
    limit = as_int(data, "limit", -1, minimum=0) if data.get("limit") not in (None, "") else None
    offset = as_int(data, "offset", 0, minimum=0)
    types = visible_open_types(ctx.principal, as_bool(data, "include_private", False))
    query = _published(select(Dataset.code), types).order_by(Dataset.code).offset(offset).limit(limit)
    return [mapping.slug(c) for c in ctx.session.execute(query).scalars()]


def current_package_list_with_resources(ctx: Context, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Visible datasets with their resources, most recently modified first (limit, offset or page)."""
    limit = as_int(data, "limit", 10, minimum=1, maximum=MAX_LIST, clamp=True)
    offset = as_int(data, "offset", 0, minimum=0)
    page = as_int(data, "page", 0, minimum=0)
    if page:
        offset = (page - 1) * limit
    types = visible_open_types(ctx.principal, as_bool(data, "include_private", False))
    ids = list(ctx.session.execute(_published(select(Dataset.id), types)
                                   .order_by(Dataset.updated_at.desc(), Dataset.code).offset(offset).limit(limit)
                                   ).scalars())
    return package_dicts(ctx, load_datasets(ctx.session, ids))


def package_show(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A dataset (`id` = its id or name) with its resources, tags, groups, extras, organization and items."""
    return package_of(ctx, find_package(ctx, data.get("id") or data.get("name_or_id")))


def resource_show(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A resource (`id` like gaj-00001-v2-csv): one published version of a dataset in one format."""
    resource_id = as_str(data, "id", required=True, max_length=200)
    parsed = mapping.parse_resource_id(resource_id)
    if parsed is None:
        raise NotFound(f"资源文件 {resource_id} 不存在")
    code, version, _fmt = parsed
    dataset = find_package(ctx, code)
    for resource in package_of(ctx, dataset)["resources"]:
        if resource["id"] == resource_id.lower():
            return resource
    raise NotFound(f"资源 {dataset.code} 没有版本 {version}")


# --- package_search
_FIELD = r"[A-Za-z_][A-Za-z0-9_.]*|[\u4e00-\u9fff]+"
_TOKEN = re.compile(r'\s*(?P<sign>[+-]?)(?P<field>' + _FIELD + r'):(?P<value>"(?:[^"\\]|\\.)*"|\([^)]*\)|[^\s()"]+)')
_CONJUNCTION = re.compile(r"\s*(AND|&&)(?=\s|$)")
ENGINE_FIELDS = {  # fq field → search-engine facet
    "organization": "department", "owner_org": "department", "department": "department", "部门": "department",
    "license_id": "open_type", "category": "category", "分类": "category",
    "share_type": "share_type", "共享类型": "share_type", "open_type": "open_type", "开放类型": "open_type",
    "security_grade": "security_grade", "安全分级": "security_grade",
    "collection_status": "collection_status", "归集状态": "collection_status",
}
POST_FIELDS = {"tags": "tags", "关键词": "tags", "groups": "groups", "topic": "groups", "主题": "groups",
               "res_format": "res_format", "name": "code", "id": "code"}
SPECIAL_FIELDS = {"private", "capacity", "dataset_type", "type", "state", "site_id", "entity_type"}
FACET_ENGINE = {"organization": "department", "owner_org": "department", "department": "department",
                "license_id": "open_type", "category": "category", "share_type": "share_type",
                "open_type": "open_type", "security_grade": "security_grade",
                "collection_status": "collection_status"}
SORT_KEYS = {"name asc": "code", "title_string asc": "name", "title asc": "name",
             "metadata_modified desc": "-updated_at"}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _values(raw: str) -> list[str]:
    if raw.startswith("("):
        parts = re.findall(r'"(?:[^"\\]|\\.)*"|[^\s()]+', raw[1:-1])
        if any(p in ("AND", "&&", "NOT") for p in parts):
            raise SearchQueryError(f"括号内只支持 OR：{raw}")
        values = [_unquote(p) for p in parts if p not in ("OR", "||")]
        if not values:
            raise SearchQueryError(f"空的取值列表：{raw}")
        return values
    return [_unquote(raw)]


def parse_fq(text: str) -> list[tuple[str, list[str]]]:
    """Solr-style filters: `field:value`, `field:"a b"`, `field:(a OR b)`, optionally `+`-prefixed, ANDed."""
    out: list[tuple[str, list[str]]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        conj = _CONJUNCTION.match(text, pos)
        if conj:
            pos = conj.end()
            continue
        match = _TOKEN.match(text, pos)
        if not match:
            raise SearchQueryError(f"无法解析的筛选条件：{text[pos:].strip()[:80]}（格式为 字段:值，如 organization:gaj）")
        if match.group("sign") == "-":
            raise SearchQueryError(f"不支持排除条件：{match.group(0).strip()}")
        out.append((match.group("field"), _values(match.group("value"))))
        pos = match.end()
    return out


def split_q(q: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """Free text and the `field:value` filters a q may hold (CKAN passes q to Solr, which reads both)."""
    q = q.replace("*:*", " ").strip()
    known = set(ENGINE_FIELDS) | set(POST_FIELDS) | SPECIAL_FIELDS
    filters: list[tuple[str, list[str]]] = []
    text: list[str] = []
    last = 0
    for match in _TOKEN.finditer(q):
        if match.group("field") in known and match.group("sign") != "-":
            text.append(q[last:match.start()])
            filters.append((match.group("field"), _values(match.group("value"))))
            last = match.end()
    text.append(q[last:])
    free = " ".join(" ".join(text).replace("*", " ").split())
    return free, filters


@dataclass
class Filters:
    engine: dict[str, set[str]] = field(default_factory=dict)
    post: list[tuple[str, set[str]]] = field(default_factory=list)

    def narrow(self, facet: str, values: Iterable[str]) -> None:
        values = set(values)
        self.engine[facet] = self.engine[facet] & values if facet in self.engine else values


def build_filters(pairs: list[tuple[str, list[str]]]) -> Filters:
    out = Filters()
    for name, values in pairs:
        if name in ENGINE_FIELDS:
            facet = ENGINE_FIELDS[name]
            if facet == "department":
                values = [mapping.department_code(v) or v for v in values]
            elif name == "license_id":
                values = [mapping.LICENSE_OPEN_TYPE.get(v, f"?{v}") for v in values]
            out.narrow(facet, values)
        elif name in POST_FIELDS:
            kind = POST_FIELDS[name]
            if kind == "code":
                values = [mapping.dataset_code(v) or v for v in values]
            elif kind == "res_format":
                values = [v.lower() for v in values]
            out.post.append((kind, set(values)))
        elif name in ("private", "capacity"):
            accepted = ("true", "false") if name == "private" else ("private", "public")
            wanted: set[str] = set()
            for v in values:
                if v.lower() not in accepted:
                    raise SearchQueryError(f"{name} 的取值应为 {' 或 '.join(accepted)}")
                private = v.lower() in ("true", "private")
                wanted |= {OpenType.closed.value} if private else set(PUBLIC_OPEN_TYPES)
            out.narrow("open_type", wanted)
        elif name in ("dataset_type", "type", "entity_type"):
            if any(v != "dataset" and v != "package" for v in values):
                out.narrow("open_type", set())  # nothing else is catalogued
        elif name == "state":
            if "active" not in values:
                out.narrow("open_type", set())  # withdrawn datasets are never searched
        elif name == "site_id":
            continue
        else:
            raise SearchQueryError(
                f"不支持的筛选字段 {name}；支持 organization、tags、groups、res_format、license_id、name、private、"
                "category、share_type、open_type、security_grade、collection_status")
    return out


def engine_sort(sort: str | None, has_terms: bool) -> str:
    if not sort:
        sort = "score desc, metadata_modified desc"
    for clause in sort.split(","):
        clause = " ".join(clause.strip().split()).lower() if clause.strip() not in SORTS else clause.strip()
        if not clause:
            continue
        if clause in SORTS:
            if clause == "relevance" and not has_terms:
                continue
            return clause
        if clause in ("score desc", "rank desc"):
            if has_terms:
                return "relevance"
            continue
        if clause in SORT_KEYS:
            return SORT_KEYS[clause]
        raise SearchQueryError(f"不支持的排序 {clause!r}；支持 score desc、name asc、title_string asc、"
                               f"metadata_modified desc，或 {', '.join(SORTS)}")
    return "code"


def _facet_rows(session: Session) -> dict[int, tuple]:
    rows = session.execute(
        select(Dataset.id, Dataset.code, Department.code, Department.name, Dataset.category, Dataset.topic,
               Dataset.keywords, Dataset.share_type, Dataset.open_type, Dataset.security_grade,
               Dataset.collection_status, Dataset.latest_version)
        .join(Department, Department.id == Dataset.department_id)
        .where(Dataset.status == DatasetStatus.published)).all()
    return {r[0]: r for r in rows}


def _v(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _post_match(row: tuple, post: list[tuple[str, set[str]]]) -> bool:
    for kind, values in post:
        if kind == "tags":
            if not values & set(row[6] or []):
                return False
        elif kind == "groups":
            if _v(row[4]) not in values and row[5] not in values:
                return False
        elif kind == "res_format":
            if row[11] is None or not values & {"csv", "json", "parquet"}:
                return False
        elif kind == "code":
            if row[1] not in values:
                return False
    return True


def _row_facet(name: str, row: tuple) -> list[tuple[str, str]]:
    if name == "organization":
        return [(row[2].lower(), row[3])]
    if name in ("owner_org", "department"):
        return [(row[2], row[3])]
    if name == "tags":
        return [(k, k) for k in dict.fromkeys(row[6] or [])]
    if name == "groups":
        return [(_v(row[4]), _v(row[4]))] + ([(row[5], row[5])] if row[5] else [])
    if name == "res_format":
        return [(label, label) for _f, label, _m in mapping.FORMATS] if row[11] is not None else []
    if name == "license_id":
        lic = mapping.LICENSES[_v(row[8])]
        return [(lic["id"], lic["title"])]
    index = {"category": 4, "share_type": 7, "open_type": 8, "security_grade": 9, "collection_status": 10}.get(name)
    return [(_v(row[index]), _v(row[index]))] if index is not None else []


def _facet_output(counts: dict[str, dict[str, tuple[str, int]]], limit: int) -> tuple[dict, dict]:
    facets, search_facets = {}, {}
    for name, values in counts.items():
        ordered = sorted(values.items(), key=lambda kv: (-kv[1][1], kv[0]))
        if limit >= 0:
            ordered = ordered[:limit]
        facets[name] = {value: count for value, (_label, count) in ordered}
        search_facets[name] = {"title": name, "items": [{"name": value, "display_name": label, "count": count}
                                                        for value, (label, count) in ordered]}
    return facets, search_facets


def package_search(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Search datasets: q (Chinese full text; `field:value` terms are filters), fq (organization:, tags:, groups:,
    res_format:, license_id:, name:, private:, and our facets category/share_type/open_type/security_grade/
    collection_status), sort, rows (≤ 1000), start, facet.field, facet.limit, include_private."""
    q = as_str(data, "q", "", max_length=1000) or ""
    fq = as_str(data, "fq", "", max_length=4000) or ""
    fq_list = [v for v in as_list(data.get("fq_list"), "fq_list", split_commas=False) if isinstance(v, str)]
    rows = as_int(data, "rows", 10, minimum=0, maximum=MAX_ROWS, clamp=True)
    start = as_int(data, "start", 0, minimum=0, maximum=10**7)
    facet_fields = [str(f) for f in as_list(data.get("facet.field"), "facet.field")]
    facet_limit = as_int(data, "facet.limit", 50, minimum=-1, maximum=10**6)
    include_private = as_bool(data, "include_private", False)
    sort_text = as_str(data, "sort", None, max_length=200)

    text, q_filters = split_q(q)
    pairs = q_filters + parse_fq(fq) + [p for f in fq_list for p in parse_fq(f)]
    filters = build_filters(pairs)
    types = visible_open_types(ctx.principal, include_private)
    if types is not None:
        filters.narrow("open_type", types)
    has_terms = bool(text.strip())
    sort = engine_sort(sort_text, has_terms)
    public_only = not is_government(ctx.principal)
    engine_filters = tuple(sorted((k, tuple(sorted(v))) for k, v in filters.engine.items()))
    slow = bool(filters.post) or any(f not in FACET_ENGINE for f in facet_fields)

    def run(page: int, page_size: int):  # noqa: ANN202
        query = SearchQuery(q=text, filters=engine_filters, sort=sort, page=page, page_size=page_size,
                            public_only=public_only)
        if page_size <= MAX_ROWS:
            return ctx.search.search(ctx.session, query)
        # Whole-result reads (post filters, computed facets, deep odd offsets) bypass the engine's result cache:
        # hundreds of cached id lists of a large catalog would hold a lot of memory for little reuse.
        return ctx.search._search(ctx.session, ctx.search.snapshot(ctx.session), query)  # noqa: SLF001

    if rows and start % rows == 0:
        first = run(start // rows + 1, rows)
        page_ids = first.ids
    else:
        first = run(1, max(1, start + rows))
        page_ids = first.ids[start:start + rows]
    total = first.total
    counts: dict[str, dict[str, tuple[str, int]]] = {}
    if slow:
        full = first if start == 0 and len(first.ids) >= total else run(1, max(1, total))
        ids = full.ids
        table = _facet_rows(ctx.session)
        matched = [i for i in ids if i in table and _post_match(table[i], filters.post)]
        total = len(matched)
        page_ids = matched[start:start + rows]
        for name in facet_fields:
            counter: Counter = Counter()
            labels: dict[str, str] = {}
            for i in matched:
                for value, label in _row_facet(name, table[i]):
                    counter[value] += 1
                    labels[value] = label
            counts[name] = {v: (labels[v], c) for v, c in counter.items()}
    else:
        for name in facet_fields:
            facet = FACET_ENGINE[name]
            selected = filters.engine.get(facet)
            entries = {}
            for entry in first.facets.get(facet, []):
                value, count = entry["value"], entry["count"]
                if not count or (selected is not None and value not in selected):
                    continue  # CKAN's facets count the result set (ours ignore the facet's own filter)
                label = entry.get("label") or value
                if name == "organization":
                    value = value.lower()
                elif name == "license_id":
                    label = mapping.LICENSES[value]["title"]
                    value = mapping.LICENSES[value]["id"]
                entries[value] = (label, count)
            counts[name] = entries
    facets, search_facets = _facet_output(counts, facet_limit)
    results = package_dicts(ctx, load_datasets(ctx.session, list(page_ids))) if rows else []
    return {"count": total, "results": results, "facets": facets, "search_facets": search_facets,
            "sort": sort_text or "score desc, metadata_modified desc"}


# ---------------------------------------------------------------- packages: write
def _require(ctx: Context) -> Principal:
    if ctx.grant_token:
        raise PermissionDenied("授权凭证 (odg_…) 只能用于 datastore_search；修改目录请使用用户令牌 (odh_…)")
    if ctx.principal is None:
        raise PermissionDenied("需要登录：请在 Authorization（或 X-CKAN-API-Key）头中提供 API 令牌 (odh_…)")
    return ctx.principal


def _validated(model: type[pydantic.BaseModel], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except pydantic.ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ())) or "__all__"
            errors.setdefault(mapping.ckan_key(loc), []).append(e.get("msg", "invalid"))
        raise CkanValidationError(errors) from None


def package_create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Register (编目) a dataset from a CKAN package dict: name (资源代码, optional), title, notes, tags, owner_org,
    groups (分类 and topic), maintainer, extras (共享类型, 开放类型, 安全分级, 更新周期, …) and `items` (数据项)."""
    principal = _require(ctx)
    body = _validated(DatasetCreate, mapping.package_input(data, replace=False))
    dataset = service.create_dataset(ctx.session, ctx.search, principal, body)
    ctx.session.commit()
    return package_of(ctx, dataset)


def _update(ctx: Context, principal: Principal, dataset: Dataset, data: dict[str, Any]) -> dict[str, Any]:
    fields = mapping.package_input(data, replace=True)
    code = fields.pop("code", None)
    if code is not None and code != dataset.code:
        raise invalid("name", f"资源代码不能修改（{dataset.code}）")
    body = _validated(DatasetUpdate, fields)
    dataset = service.update_dataset(ctx.session, ctx.search, principal, dataset.code, body)
    ctx.session.commit()
    return package_of(ctx, dataset)


def package_update(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Replace a dataset (`id` or `name`) as a whole: fields left out are cleared, except items and owner_org."""
    principal = _require(ctx)
    dataset = find_package(ctx, data.get("id") or data.get("name"))
    check_update_dataset(principal, dataset)
    return _update(ctx, principal, dataset, data)


def package_patch(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Change only the given fields of a dataset (`id` or `name`); lists given (tags, groups, extras, items) replace
    the whole list, as in CKAN."""
    principal = _require(ctx)
    dataset = find_package(ctx, data.get("id") or data.get("name"))
    check_update_dataset(principal, dataset)
    current = package_of(ctx, dataset)
    for name in mapping.TOP_LEVEL_FIELDS:
        if name not in data:
            continue
        if name in ("category", "topic") and "groups" not in data:
            is_category = name == "category"
            current["groups"] = [g for g in current["groups"]
                                 if (g["name"] in mapping.CATEGORY_VALUES) != is_category]
        elif "extras" not in data:
            keys = {k for k, f in mapping.EXTRA_FIELDS.items() if f == name}
            current["extras"] = [e for e in current["extras"] if e["key"] not in keys]
        if name == "contact_name" and "maintainer" not in data:
            current.pop("maintainer", None)
    merged = {**current, **{k: v for k, v in data.items() if k not in ("id",)}}
    merged["name"] = current["name"] if "name" not in data else data["name"]
    if "owner_org" not in data and "organization" in data:
        merged["owner_org"] = data["organization"]
    return _update(ctx, principal, dataset, merged)


def package_delete(ctx: Context, data: dict[str, Any]) -> None:
    """Withdraw (撤销) a dataset: its department's publishers or the steward; `reason` optional. Kept for history."""
    principal = _require(ctx)
    dataset = find_package(ctx, data.get("id") or data.get("name"))
    check_update_dataset(principal, dataset)
    if dataset.status == DatasetStatus.withdrawn:
        return None  # already withdrawn: CKAN's delete is idempotent
    reason = as_str(data, "reason", DEFAULT_WITHDRAW_REASON) or DEFAULT_WITHDRAW_REASON
    service.withdraw_dataset(ctx.session, ctx.search, principal, dataset.code, reason)
    ctx.session.commit()
    return None


def resource_create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Deliver (归集) a data file as a new version of the dataset `package_id`: multipart `upload` (CSV, XLSX,
    JSON Lines, Parquet). Quality runs on the new version. Returns the new version's resource."""
    principal = _require(ctx)
    dataset = find_package(ctx, data.get("package_id"), key="package_id")
    collection.check_deliver(principal, dataset)
    upload = next((v for k, v in data.items() if hasattr(v, "filename") and hasattr(v, "file")), None)
    if upload is None:
        raise invalid("upload", "请以 multipart 上传数据文件（字段 upload）；本平台不登记外部链接 (url)，数据须归集")
    filename = Path(upload.filename or str(data.get("name") or "upload")).name
    fmt_hint = str(data.get("format") or "").strip().lower()
    if not Path(filename).suffix and fmt_hint:
        filename = f"{filename}.{fmt_hint}"
    try:
        file_format = collection.detect_format(filename)
    except CollectionRejected as exc:
        raise invalid("upload", exc.message) from None
    settings = ctx.settings
    storage = storage_for(settings.resolved_storage_root())
    code = dataset.code
    with tempfile.TemporaryDirectory(prefix="odh-ckan-") as tmp:
        path = Path(tmp) / f"upload{Path(filename).suffix.lower()}"
        copied = 0
        with path.open("wb") as out:
            while chunk := upload.file.read(8 << 20):
                copied += len(chunk)
                if copied > settings.max_upload_bytes:
                    raise invalid("upload", f"文件超过上限 {settings.max_upload_bytes:,} 字节")
                out.write(chunk)
        delivery = Delivery(kind="upload", name=filename, path=path, file_format=file_format)
        try:
            result = collection.deliver_and_check(ctx.session, storage, principal, dataset, delivery,
                                                  max_bytes=settings.max_upload_bytes)
        except CollectionRejected as exc:
            raise invalid("upload", exc.message) from None
    fmt = {"jsonl": "json", "parquet": "parquet"}.get(file_format, "csv")
    wanted = f"{mapping.slug(code)}-v{result.version.version}-{fmt}"
    dataset = service.find_dataset(ctx.session, code)
    return next(r for r in package_of(ctx, dataset)["resources"] if r["id"] == wanted)


# ---------------------------------------------------------------- organizations, groups, tags, users
def _dataset_counts(ctx: Context, column) -> Counter:  # noqa: ANN001
    types = visible_open_types(ctx.principal, True)
    rows = ctx.session.execute(_published(select(column, func.count(Dataset.id)), types).group_by(column)).all()
    return Counter({_v(k): n for k, n in rows if k is not None})


def _page(items: list, data: dict[str, Any]) -> list:
    limit = as_int(data, "limit", MAX_LIST, minimum=0, maximum=MAX_LIST, clamp=True)
    offset = as_int(data, "offset", 0, minimum=0)
    return items[offset: offset + limit]


def _order(entries: list[tuple[str, str, int]], sort: str | None) -> list[tuple[str, str, int]]:
    """(name, title, count) sorted as CKAN's `sort`: name asc (default), title asc, package_count desc."""
    sort = " ".join((sort or "name asc").lower().split())
    key, _, direction = sort.partition(" ")
    if key not in ("name", "title", "package_count") or direction not in ("", "asc", "desc"):
        raise invalid("sort", "sort 应为 name、title 或 package_count，后接 asc 或 desc")
    index = {"name": 0, "title": 1, "package_count": 2}[key]
    return sorted(entries, key=lambda e: (e[index], e[0]), reverse=direction == "desc")


def _visible_departments(ctx: Context) -> list[tuple[Department, int]]:
    counts = _dataset_counts(ctx, Dataset.department_id)
    departments = ctx.session.execute(select(Department).order_by(Department.code)).scalars().all()
    if not is_government(ctx.principal):  # the public knows the departments of the open catalog only
        departments = [d for d in departments if counts.get(d.id)]
    return [(d, counts.get(d.id, 0)) for d in departments]


def organization_list(ctx: Context, data: dict[str, Any]) -> list[Any]:
    """Departments (names, or dicts with all_fields); the public sees those providing open datasets."""
    wanted = {mapping.department_code(o) for o in as_list(data.get("organizations"), "organizations")}
    found = [(d, n) for d, n in _visible_departments(ctx) if not wanted or d.code in wanted]
    by_name = {mapping.slug(d.code): (d, n) for d, n in found}
    ordered = _order([(mapping.slug(d.code), d.name, n) for d, n in found], as_str(data, "sort"))
    chosen = _page([by_name[name] for name, _t, _n in ordered], data)
    if not as_bool(data, "all_fields", False):
        return [mapping.slug(d.code) for d, _ in chosen]
    with_count = as_bool(data, "include_dataset_count", True)
    return [mapping.organization_dict(d, n if with_count else None) for d, n in chosen]


def _datasets_where(ctx: Context, condition, limit: int = MAX_LIST) -> list[dict[str, Any]]:  # noqa: ANN001
    types = visible_open_types(ctx.principal, True)
    ids = list(ctx.session.execute(_published(select(Dataset.id), types).where(condition)
                                   .order_by(Dataset.code).limit(limit)).scalars())
    return package_dicts(ctx, load_datasets(ctx.session, ids))


def organization_show(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A department (`id` = its code, any case) with its dataset count; include_datasets adds its datasets."""
    code = mapping.department_code(data.get("id"))
    found = next(((d, n) for d, n in _visible_departments(ctx) if d.code == code), None) if code else None
    if found is None:
        raise NotFound(f"部门 {data.get('id')} 不存在")
    dept, count = found
    out = mapping.organization_detail(dept, count)
    if as_bool(data, "include_datasets", False):
        out["packages"] = _datasets_where(ctx, Dataset.department_id == dept.id)
    return out


def _groups(ctx: Context) -> dict[str, int]:
    counts: dict[str, int] = {c: 0 for c in mapping.CATEGORY_VALUES}
    counts.update(_dataset_counts(ctx, Dataset.category))
    for topic, n in _dataset_counts(ctx, Dataset.topic).items():
        counts[topic] = counts.get(topic, 0) + n
    return counts


def group_list(ctx: Context, data: dict[str, Any]) -> list[Any]:
    """Groups: the four 分类 (基础库, 主题库, 专题库, 部门库) and the topics of the visible datasets."""
    counts = _groups(ctx)
    wanted = {str(g) for g in as_list(data.get("groups"), "groups")}
    entries = [(name, name, n) for name, n in counts.items() if not wanted or name in wanted]
    chosen = _page(_order(entries, as_str(data, "sort")), data)
    if not as_bool(data, "all_fields", False):
        return [name for name, _t, _n in chosen]
    with_count = as_bool(data, "include_dataset_count", True)
    return [mapping.group_dict(name, n if with_count else None) for name, _t, n in chosen]


def group_show(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A 分类 or topic group (`id` = its name) with its count; include_datasets adds its datasets."""
    name = as_str(data, "id", required=True, max_length=200)
    counts = _groups(ctx)
    if name not in counts:
        raise NotFound(f"分组 {name} 不存在")
    out = mapping.group_dict(name, counts[name])
    out.update({"extras": [], "tags": [], "users": [], "groups": []})
    if as_bool(data, "include_datasets", False):
        condition = Dataset.category == name if name in mapping.CATEGORY_VALUES else Dataset.topic == name
        out["packages"] = _datasets_where(ctx, condition)
    return out


def tag_list(ctx: Context, data: dict[str, Any]) -> list[Any]:
    """Keywords (关键词) of the visible datasets; `query` keeps those containing it; all_fields gives dicts."""
    if data.get("vocabulary_id"):
        return []
    needle = (as_str(data, "query", "", max_length=100) or as_str(data, "q", "", max_length=100) or "").lower()
    types = visible_open_types(ctx.principal, True)
    tags: set[str] = set()
    for keywords in ctx.session.execute(_published(select(Dataset.keywords), types)).scalars():
        tags.update(k for k in keywords or [] if needle in k.lower())
    names = _page(sorted(tags), data)
    if as_bool(data, "all_fields", False):
        return [mapping.tag_dict(n) for n in names]
    return names


def user_show(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A user (`id` = user name or id; yourself when left out). Others' accounts only for the steward and admins."""
    principal = ctx.principal
    if principal is None:
        raise PermissionDenied("查看用户信息需要登录（Authorization: <令牌>）")
    target = data.get("id") or data.get("user_id") or principal.username
    target = str(target)
    privileged = principal.is_steward or principal.has(Role.admin)
    is_self = target in (principal.username, str(principal.user_id))
    if not is_self and not privileged:
        raise PermissionDenied("只能查看自己的用户信息")
    query = select(User).where(User.username == target)
    if target.isdigit():
        query = select(User).where((User.username == target) | (User.id == int(target)))
    user = ctx.session.execute(query).scalars().first()
    if user is None:
        raise NotFound(f"用户 {target} 不存在")
    out = {"id": str(user.id), "name": user.username, "fullname": user.display_name,
           "display_name": user.display_name, "about": "", "state": "active" if user.is_active else "deleted",
           "sysadmin": user.has_role(Role.admin.value), "created": mapping.iso(user.created_at),
           "image_display_url": "", "email_hash": "", "number_created_packages": 0,
           "organization": mapping.slug(user.department.code), "roles": sorted(user.roles or [])}
    out["number_created_packages"] = ctx.session.execute(
        select(func.count(Dataset.id)).where(Dataset.created_by_id == user.id,
                                             Dataset.status == DatasetStatus.published)).scalar_one()
    if is_self and user.contact:
        out["email"] = user.contact
    return out


# ---------------------------------------------------------------- registry
@dataclass(frozen=True)
class Action:
    fn: Callable[..., Any]
    side_effect_free: bool  # may be called with GET
    is_async: bool = False  # datastore_search: an async function that opens its own sessions


def _registry() -> dict[str, Action]:
    from catalog.ckan.datastore import datastore_search

    reads = [status_show, site_read, license_list, help_show, package_list, current_package_list_with_resources,
             package_show, resource_show, package_search, organization_list, organization_show, group_list,
             group_show, tag_list, user_show]
    writes = [package_create, package_update, package_patch, package_delete, resource_create]
    out = {fn.__name__: Action(fn, True) for fn in reads}
    out.update({fn.__name__: Action(fn, False) for fn in writes})
    out["datastore_search"] = Action(datastore_search, True, is_async=True)
    return out


ACTIONS: dict[str, Action] = {}


def actions() -> dict[str, Action]:
    if not ACTIONS:
        ACTIONS.update(_registry())
    return ACTIONS


__all__ = ["Context", "Action", "actions"]
