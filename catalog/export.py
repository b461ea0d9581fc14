"""Export: the catalog as DCAT (RDF: Turtle, JSON-LD) and each dataset as a Frictionless Data Package.

Only what the caller may see is exported (catalog.permissions.can_see_dataset): the anonymous public and registered
outside users get the open catalog (无条件开放 / 受限开放), a government user every published dataset. A dataset's
distributions and the Data Package's resource are the ways *this caller* may get the data (see `channels`).

IRIs
----
Everything the platform describes gets a stable IRI under the request's base URL (`{base}` below), so harvesting
twice gives the same identifiers:

    {base}/api/v1/catalog                                   the dcat:Catalog
    {base}/api/v1/datasets/{code}                           a dcat:Dataset (the JSON endpoint of the same resource)
    {base}/api/v1/datasets/{code}#schema                    its data items as a csvw:Schema (also a dct:Standard)
    {base}/api/v1/datasets/{code}#item-{item}               one data item (csvw:Column)
    {base}/api/v1/datasets/{code}#contact                   its contact point (vcard:Individual)
    {base}/api/v1/datasets/{code}#v{n}-{channel}-{format}   a dcat:Distribution of published version n
    {base}/api/v1/departments/{code}                        a department (foaf:Organization): publisher
    {base}/api/v1/standards/{identifier}/versions/{version} a data element standard version (dct:Standard)
    {base}/gateway/v1, {base}/open/v1                       the sharing gateway and the open-data portal (dcat:DataService)

Vocabularies
------------
DCAT 3 (`dcat:`), DCMI terms (`dct:`), FOAF, vCard, SKOS, CSVW, SPDX (checksums), ADMS (status, publisher type)
and the EU Publications Office authority tables that DCAT-AP 3 recommends:

* dct:accrualPeriodicity (更新周期) → EU frequency: 实时 UPDATE_CONT, 每日 DAILY, 每周 WEEKLY, 每月 MONTHLY,
  每季度 QUARTERLY, 每半年 ANNUAL_2 (semiannual), 每年 ANNUAL, 不定期 IRREG.
* dct:accessRights (开放类型) → EU access-right: 无条件开放 PUBLIC, 受限开放 RESTRICTED, 禁止开放 NON_PUBLIC.
* dcat:theme → EU data-theme, from the topic (主题) or else the base library (基础库); no theme when neither maps.
* dct:format → EU file-type CSV / JSON / PARQUET (Arrow has no entry: media type only);
  dcat:mediaType → IANA media-type IRIs (text/csv, application/json, application/vnd.apache.parquet,
  application/vnd.apache.arrow.stream).
* dct:language → EU language ZHO; text literals are tagged `@zh`.

The platform's own terms live in one small namespace, `odh:` = https://opendata-hub.example/ns# :

    properties (on dcat:Dataset)   odh:shareType, odh:shareCondition, odh:shareMethod, odh:openType,
                                   odh:openCondition, odh:securityGrade (安全分级), odh:nationalLevel (GB/T 43697
                                   一般/重要/核心), odh:collectionStatus (归集状态), odh:topic (主题, text),
                                   odh:baseLibrary (基础库, text), odh:rowCount (rows of the latest version)
    properties (on csvw:Column)    odh:securityGrade, odh:sensitivity (一般 / 敏感个人信息), odh:itemSource
                                   (一数一源: authoritative | reference), odh:sourceItem (the authoritative item a
                                   reference copies, when the caller may see its dataset), odh:masked (masked by
                                   default when it leaves the platform), odh:maskKind (id_number, mobile, name,
                                   address, account, generic)
    concepts (skos:Concept, each with its Chinese skos:prefLabel and skos:inScheme)
        odh:ShareTypes       odh:share-unconditional 无条件共享, odh:share-conditional 有条件共享, odh:share-none 不予共享
        odh:ShareMethods     odh:method-api 接口, odh:method-file 文件, odh:method-table 库表
        odh:OpenTypes        odh:open-unconditional 无条件开放, odh:open-restricted 受限开放, odh:open-closed 禁止开放
        odh:SecurityGrades   odh:grade-L1 … odh:grade-L4 (DB33/T 2350-2021)
        odh:NationalLevels   odh:level-general 一般, odh:level-important 重要, odh:level-core 核心
        odh:Categories       odh:category-base 基础库, -topic 主题库, -special 专题库, -department 部门库 (dct:type)
        odh:CollectionStatuses  odh:collection-none 未归集, -collected 已归集, -failed 归集失败, -expired 已过期
        odh:Sensitivities    odh:sensitivity-general 一般, odh:sensitivity-personal 敏感个人信息
        odh:ItemSources      odh:source-authoritative, odh:source-reference

Data items
----------
The dataset dct:conformsTo its `#schema`, a csvw:Schema whose csvw:column list holds one csvw:Column per data item
in catalog order (csvw:name = item code, csvw:title = item name, csvw:datatype = the XSD type of the item's standard,
csvw:required) and whose csvw:primaryKey names the key items. Every column dct:conformsTo the data element standard
version it is bound to (一标准), described as a dct:Standard (identifier, title, version, definition, issue date).

Distributions
-------------
One dcat:Distribution per format of the *latest* published version and per channel the caller may use (older
versions stay listed at /api/v1/datasets/{code}/versions and remain downloadable with `version=`):

* `open` (无条件开放): the open-data portal's downloads, pinned to the version. CSV and Parquet are whole files:
  dcat:downloadURL, and dcat:byteSize + spdx:checksum (SHA-256) of exactly the bytes that URL returns now (computed
  through the gateway runtime, as the download is; cached per version, format and objection marks). JSON is paged:
  dcat:accessURL only.
* `gateway`: the sharing gateway, which needs a grant credential and serves the grant's scope (columns, rows,
  masking), so no size or checksum can be given: dcat:accessURL + dcat:accessService. Offered to government users
  for 无条件共享 / 有条件共享 data, and to everyone for 受限开放 data (a registered outside user's 开放申请).

The Data Package
----------------
`datapackage(...)` gives a Data Package (v2) with one tabular resource for the latest version, pointing at the
download the caller may use: the open CSV (bytes and hash of exactly that file) or else the gateway's Parquet (no
bytes or hash: it depends on the grant). When the caller has no way to the data (nothing collected yet, 不予共享),
the resource carries only its header row inline, so the package still describes the table.

Its Table Schema is derived from the standards of the items: name = item code, title = item name, description = the
standard's definition (and unit), type, format, constraints (required; unique for a single key item; pattern;
minLength / maxLength; enum from the code list; minimum / maximum from the value range), primaryKey from the key items.
Standard regex patterns are written anchored (^…$) with \\uXXXX escapes; Table Schema patterns are implicitly
anchored XML-Schema-style regexes, so anchors are removed and escapes written as the characters themselves.
`x-element` names the standard (identifier, version, name, its own format string, unit) and `x-code-list` keeps the
code list's meanings. The package's `version` is the published version as SemVer major (version 3 → "3.0.0"),
`created` the time that version was collected; `x-odh` carries the catalog attributes (share / open type, grade, …).

Masked-by-default items (sharing.policy.masked_by_default) get `"x-masked": true` and `"x-mask-kind"`. What leaves
the platform for them is the masked text (e.g. 王**, 110105********1234, 示范市东城区***): masking replaces
characters with '*' (a pattern or a code list no longer matches), cuts an address to its 区/县 (the length changes),
turns numbers and dates into text, and can make distinct values equal. So a masked field is typed `string` and keeps
only `required` (masking keeps nulls null and values non-null); pattern, enum, lengths, bounds and `unique` are
dropped, and there is no primaryKey when a key item is masked. Every gateway output also carries the `_objection`
column (异议标注: the codes of items under an open problem ticket on that row), declared as a string field.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pyarrow.compute as pc
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.namespace import CSVW, DCTERMS, FOAF, OWL, RDF, SKOS, XSD
from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session, selectinload

from catalog.auth import Principal
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
from catalog.errors import DomainError
from catalog.models import DataItem, Dataset, DatasetVersion, Department, User
from catalog.permissions import can_see_dataset
from sharing.engine import OBJECTION_COLUMN
from sharing.gateway import public_specs
from sharing.policy import mask_kind, masked_by_default

ODH = Namespace("https://opendata-hub.example/ns#")
DCAT = Namespace("http://www.w3.org/ns/dcat#")  # open: DCAT 3 terms (dcat:version) are not in rdflib's DCAT 2 list
SPDX = Namespace("http://spdx.org/rdf/terms#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU = "http://publications.europa.eu/resource/authority/"
EU_FREQUENCY = Namespace(EU + "frequency/")
EU_ACCESS = Namespace(EU + "access-right/")
EU_THEME = Namespace(EU + "data-theme/")
EU_FILE = Namespace(EU + "file-type/")
EU_LANGUAGE = Namespace(EU + "language/")
IANA = "https://www.iana.org/assignments/media-types/"
ZH = "zh"

FREQUENCY = {UpdateCycle.realtime: EU_FREQUENCY.UPDATE_CONT, UpdateCycle.daily: EU_FREQUENCY.DAILY,
             UpdateCycle.weekly: EU_FREQUENCY.WEEKLY, UpdateCycle.monthly: EU_FREQUENCY.MONTHLY,
             UpdateCycle.quarterly: EU_FREQUENCY.QUARTERLY, UpdateCycle.half_yearly: EU_FREQUENCY.ANNUAL_2,
             UpdateCycle.yearly: EU_FREQUENCY.ANNUAL, UpdateCycle.irregular: EU_FREQUENCY.IRREG}
ACCESS_RIGHTS = {OpenType.unconditional: EU_ACCESS.PUBLIC, OpenType.restricted: EU_ACCESS.RESTRICTED,
                 OpenType.closed: EU_ACCESS.NON_PUBLIC}
# 主题 (topic) → EU data theme; the base library when the topic does not map.
TOPIC_THEMES = {"交通出行": "TRAN", "信用服务": "ECON", "公共安全": "JUST", "卫生健康": "HEAL", "发展改革": "ECON",
                "城乡建设": "REGI", "市场监管": "ECON", "教育文化": "EDUC", "数字乡村": "AGRI", "数字政府": "GOVE",
                "民政服务": "SOCI", "法律服务": "JUST", "生态环境": "ENVI", "社会保障": "SOCI", "自然资源": "ENVI",
                "营商环境": "ECON", "农业农村": "AGRI", "能源": "ENER", "科技": "TECH", "文化旅游": "EDUC"}
LIBRARY_THEMES = {"人口库": "SOCI", "法人库": "ECON", "自然资源和空间地理库": "REGI", "地名地址库": "REGI",
                  "公共信用库": "ECON", "电子证照库": "GOVE"}

# (concept IRI, scheme) of each controlled value; the label is the enum's Chinese value.
SHARE_TYPES = {ShareType.unconditional: ODH["share-unconditional"], ShareType.conditional: ODH["share-conditional"],
               ShareType.not_shared: ODH["share-none"]}
SHARE_METHODS = {ShareMethod.api: ODH["method-api"], ShareMethod.file: ODH["method-file"],
                 ShareMethod.table: ODH["method-table"]}
OPEN_TYPES = {OpenType.unconditional: ODH["open-unconditional"], OpenType.restricted: ODH["open-restricted"],
              OpenType.closed: ODH["open-closed"]}
GRADES = {g: ODH[f"grade-{g.value}"] for g in SecurityGrade}
NATIONAL_LEVELS = {NationalLevel.general: ODH["level-general"], NationalLevel.important: ODH["level-important"],
                   NationalLevel.core: ODH["level-core"]}
CATEGORIES = {Category.base: ODH["category-base"], Category.topic: ODH["category-topic"],
              Category.special: ODH["category-special"], Category.department: ODH["category-department"]}
COLLECTION_STATUSES = {CollectionStatus.not_collected: ODH["collection-none"],
                       CollectionStatus.collected: ODH["collection-collected"],
                       CollectionStatus.failed: ODH["collection-failed"],
                       CollectionStatus.expired: ODH["collection-expired"]}
SENSITIVITIES = {Sensitivity.general: ODH["sensitivity-general"],
                 Sensitivity.sensitive_personal: ODH["sensitivity-personal"]}
ITEM_SOURCES = {ItemSource.authoritative: ODH["source-authoritative"], ItemSource.reference: ODH["source-reference"]}
# enum → (its concepts, their scheme); a concept's skos:prefLabel is the enum's Chinese value (or the label below).
CONCEPTS: dict[type, tuple[dict, URIRef]] = {
    ShareType: (SHARE_TYPES, ODH.ShareTypes), ShareMethod: (SHARE_METHODS, ODH.ShareMethods),
    OpenType: (OPEN_TYPES, ODH.OpenTypes), SecurityGrade: (GRADES, ODH.SecurityGrades),
    NationalLevel: (NATIONAL_LEVELS, ODH.NationalLevels), Category: (CATEGORIES, ODH.Categories),
    CollectionStatus: (COLLECTION_STATUSES, ODH.CollectionStatuses), Sensitivity: (SENSITIVITIES, ODH.Sensitivities),
    ItemSource: (ITEM_SOURCES, ODH.ItemSources),
}
CONCEPT_LABELS = {ItemSource.authoritative: "权威来源", ItemSource.reference: "引用"}

XSD_TYPES = {DataType.string: XSD.string, DataType.integer: XSD.integer, DataType.decimal: XSD.decimal,
             DataType.date: XSD.date, DataType.datetime: XSD.dateTime, DataType.boolean: XSD.boolean}
TABLE_TYPES = {DataType.string: "string", DataType.integer: "integer", DataType.decimal: "number",
               DataType.date: "date", DataType.datetime: "datetime", DataType.boolean: "boolean"}

# Formats of each channel: (format, media type, EU file type or None, whole file?)
OPEN_FORMATS = (("csv", "text/csv", EU_FILE.CSV, True), ("parquet", "application/vnd.apache.parquet", EU_FILE.PARQUET, True),
                ("json", "application/json", EU_FILE.JSON, False))
GATEWAY_FORMATS = (("json", "application/json", EU_FILE.JSON), ("csv", "text/csv", EU_FILE.CSV),
                   ("arrow", "application/vnd.apache.arrow.stream", None),
                   ("parquet", "application/vnd.apache.parquet", EU_FILE.PARQUET))
FORMAT_NAMES = {"csv": "CSV", "json": "JSON", "parquet": "Parquet", "arrow": "Arrow IPC"}
OBJECTION_FIELD = OBJECTION_COLUMN  # every gateway output carries it

JSONLD_CONTEXT = {"dcat": str(DCAT), "dct": str(DCTERMS), "foaf": str(FOAF), "vcard": str(VCARD),
                  "skos": str(SKOS), "csvw": str(CSVW), "spdx": str(SPDX), "adms": str(ADMS), "owl": str(OWL),
                  "xsd": str(XSD), "odh": str(ODH)}


@dataclass(frozen=True)
class Digest:
    """Size and SHA-256 of exactly the bytes a download URL returns."""

    bytes: int
    sha256: str


DigestFn = Callable[[Dataset, int, str], Digest | None]


@dataclass
class ExportContext:
    base: str  # the request's base URL, without a trailing slash
    principal: Principal | None
    digest: DigestFn | None = None  # sizes of open downloads; None leaves them out
    _visible: dict[int, bool] = field(default_factory=dict)
    described: set[URIRef] = field(default_factory=set)  # shared nodes (concepts, departments, standards) already added

    def first(self, iri: URIRef) -> bool:
        """True the first time a shared node is met in this graph: describe it then, only link it afterwards."""
        if iri in self.described:
            return False
        self.described.add(iri)
        return True

    # --- IRIs
    def catalog(self) -> URIRef:
        return URIRef(f"{self.base}/api/v1/catalog")

    def dataset(self, code: str) -> URIRef:
        return URIRef(f"{self.base}/api/v1/datasets/{code}")

    def part(self, code: str, fragment: str) -> URIRef:
        return URIRef(f"{self.base}/api/v1/datasets/{code}#{quote(fragment, safe='-_.')}")

    def department(self, code: str) -> URIRef:
        return URIRef(f"{self.base}/api/v1/departments/{code}")

    def standard(self, identifier: str, version: str) -> URIRef:
        return URIRef(f"{self.base}/api/v1/standards/{quote(identifier)}/versions/{quote(version)}")

    def gateway(self) -> URIRef:
        return URIRef(f"{self.base}/gateway/v1")

    def portal(self) -> URIRef:
        return URIRef(f"{self.base}/open/v1")

    def open_download(self, code: str, version: int, fmt: str) -> str:
        return f"{self.base}/open/v1/datasets/{code}/download?format={fmt}&version={version}"

    def gateway_rows(self, code: str, version: int, fmt: str) -> str:
        return f"{self.base}/gateway/v1/datasets/{code}/rows?format={fmt}&version={version}"

    # --- who sees what
    @property
    def government(self) -> bool:
        return self.principal is not None and not self.principal.is_external

    def sees(self, dataset: Dataset) -> bool:
        if dataset.id not in self._visible:
            self._visible[dataset.id] = can_see_dataset(self.principal, dataset)
        return self._visible[dataset.id]


# ---------------------------------------------------------------- loading
def visible_datasets(session: Session, ctx: ExportContext) -> list[Dataset]:
    """The published datasets the caller may see, by code: the catalog. (Withdrawn ones are not in the catalog.)"""
    query = (select(Dataset).where(Dataset.status == DatasetStatus.published)
             .options(selectinload(Dataset.items)).order_by(Dataset.code))
    if not ctx.government:
        query = query.where(Dataset.open_type.in_([OpenType.unconditional, OpenType.restricted]))
    return [d for d in session.execute(query).unique().scalars().all() if ctx.sees(d)]


def latest_versions(session: Session, datasets: Iterable[Dataset]) -> dict[int, DatasetVersion]:
    """The latest published version row of each dataset (older versions are not read)."""
    ids = [d.id for d in datasets if d.latest_version]
    if not ids:
        return {}
    query = select(DatasetVersion).join(Dataset, (Dataset.id == DatasetVersion.dataset_id)
                                        & (Dataset.latest_version == DatasetVersion.version))
    if len(ids) <= 1000:
        query = query.where(Dataset.id.in_(ids))
    wanted = set(ids)
    return {v.dataset_id: v for v in session.execute(query).scalars() if v.dataset_id in wanted}


def _steward_department(session: Session) -> Department | None:
    """The catalog's publisher: the department of the data steward (大数据局)."""
    candidates = select(User).where(cast(User.roles, String).like('%"steward"%')).order_by(User.id)
    for user in session.execute(candidates).scalars():
        if user.has_role("steward"):
            return user.department
    return None


def _datasets_by_id(session: Session, ids: set[int]) -> dict[int, Dataset]:
    if not ids:
        return {}
    rows = session.execute(select(Dataset).where(Dataset.id.in_(list(ids)))).unique().scalars().all()
    return {d.id: d for d in rows}


def _datasets_by_code(session: Session, codes: set[str]) -> dict[str, Dataset]:
    if not codes:
        return {}
    rows = session.execute(select(Dataset).where(Dataset.code.in_(list(codes)))).unique().scalars().all()
    return {d.code: d for d in rows}


# ---------------------------------------------------------------- who may get the data how
def channels(ctx: ExportContext, dataset: Dataset, version: DatasetVersion | None) -> list[str]:
    """How this caller may get the latest version: `open` (anonymous download, 无条件开放) and/or `gateway`."""
    if version is None or dataset.status != DatasetStatus.published:
        return []
    out = []
    if dataset.open_type == OpenType.unconditional:
        out.append("open")
    if dataset.open_type == OpenType.restricted or (ctx.government and dataset.share_type != ShareType.not_shared):
        out.append("gateway")
    return out


# ---------------------------------------------------------------- DCAT
def new_graph() -> Graph:
    g = Graph()
    for prefix, ns in JSONLD_CONTEXT.items():
        g.bind(prefix, ns, override=True)
    return g


def catalog_graph(session: Session, ctx: ExportContext, title: str) -> Graph:
    datasets = visible_datasets(session, ctx)
    versions = latest_versions(session, datasets)
    g = new_graph()
    cat = ctx.catalog()
    g.add((cat, RDF.type, DCAT.Catalog))
    g.add((cat, DCTERMS.title, Literal(title, lang=ZH)))
    g.add((cat, DCTERMS.description, Literal(
        "公共数据目录：各部门编目的信息资源及其数据项、共享与开放属性、已发布版本" +
        ("（开放目录：无条件开放与受限开放资源）" if not ctx.government else ""), lang=ZH)))
    g.add((cat, DCTERMS.language, EU_LANGUAGE.ZHO))
    g.add((cat, FOAF.homepage, URIRef(f"{ctx.base}/")))
    g.add((cat, DCAT.themeTaxonomy, URIRef(EU + "data-theme")))
    steward = _steward_department(session)
    if steward is not None:
        g.add((cat, DCTERMS.publisher, _organization(g, ctx, steward)))
    known = {d.id: d for d in datasets}
    referenced = {i.reference_item.dataset_id for d in datasets for i in d.items if i.reference_item is not None}
    known.update(_datasets_by_id(session, referenced - set(known)))
    related = {c for d in datasets for c in (d.related or [])}
    by_code = {d.code: d for d in known.values()}
    by_code.update(_datasets_by_code(session, related - set(by_code)))
    modified: list[dt.datetime] = []
    for dataset in datasets:
        node = _add_dataset(g, ctx, dataset, versions.get(dataset.id), known, by_code)
        g.add((cat, DCAT.dataset, node))
        modified.append(_modified(dataset, versions.get(dataset.id)))
    for service in set(g.subjects(RDF.type, DCAT.DataService)):
        g.add((cat, DCAT.service, service))
    if modified:
        g.add((cat, DCTERMS.modified, Literal(max(modified), datatype=XSD.dateTime)))
    return g


def dataset_graph(session: Session, ctx: ExportContext, dataset: Dataset) -> Graph:
    version = latest_versions(session, [dataset]).get(dataset.id)
    referenced = {i.reference_item.dataset_id for i in dataset.items if i.reference_item is not None}
    known = {dataset.id: dataset, **_datasets_by_id(session, referenced - {dataset.id})}
    by_code = {d.code: d for d in known.values()}
    by_code.update(_datasets_by_code(session, set(dataset.related or []) - set(by_code)))
    g = new_graph()
    _add_dataset(g, ctx, dataset, version, known, by_code)
    return g


def _concept(g: Graph, ctx: ExportContext, value: Any) -> URIRef:
    table, scheme = CONCEPTS[type(value)]
    iri = table[value]
    if not ctx.first(iri):
        return iri
    g.add((iri, RDF.type, SKOS.Concept))
    g.add((iri, SKOS.prefLabel, Literal(CONCEPT_LABELS.get(value, value.value), lang=ZH)))
    g.add((iri, SKOS.inScheme, scheme))
    return iri


def _organization(g: Graph, ctx: ExportContext, department: Department) -> URIRef:
    org = ctx.department(department.code)
    if not ctx.first(org):
        return org
    g.add((org, RDF.type, FOAF.Organization))
    g.add((org, FOAF.name, Literal(department.name, lang=ZH)))
    g.add((org, DCTERMS.identifier, Literal(department.code)))
    g.add((org, DCTERMS.type, URIRef("http://purl.org/adms/publishertype/LocalAuthority")))
    if department.short_name:
        g.add((org, SKOS.altLabel, Literal(department.short_name, lang=ZH)))
    return org


def _modified(dataset: Dataset, version: DatasetVersion | None) -> dt.datetime:
    stamps = [dataset.updated_at]
    if version is not None:
        stamps.append(version.collected_at)
    return max(_utc(s) for s in stamps if s is not None)


def _utc(value: dt.datetime) -> dt.datetime:
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


_TEL = re.compile(r"^\+?[0-9][0-9-]{2,30}$")


def _add_dataset(g: Graph, ctx: ExportContext, dataset: Dataset, version: DatasetVersion | None,
                 known: dict[int, Dataset], by_code: dict[str, Dataset]) -> URIRef:
    code = dataset.code
    ds = ctx.dataset(code)
    add = g.add
    add((ds, RDF.type, DCAT.Dataset))
    add((ds, DCTERMS.identifier, Literal(code)))
    add((ds, DCTERMS.title, Literal(dataset.name, lang=ZH)))
    if dataset.summary:
        add((ds, DCTERMS.description, Literal(dataset.summary, lang=ZH)))
    for keyword in dataset.keywords or []:
        add((ds, DCAT.keyword, Literal(keyword, lang=ZH)))
    add((ds, DCTERMS.language, EU_LANGUAGE.ZHO))
    add((ds, DCTERMS.publisher, _organization(g, ctx, dataset.department)))
    if dataset.contact_name or dataset.contact_phone:
        contact = ctx.part(code, "contact")
        add((ds, DCAT.contactPoint, contact))
        add((contact, RDF.type, VCARD.Individual))
        add((contact, VCARD.fn, Literal(dataset.contact_name or dataset.department.name, lang=ZH)))
        add((contact, VCARD["organization-name"], Literal(dataset.department.name, lang=ZH)))
        phone = (dataset.contact_phone or "").strip()
        if phone:
            add((contact, VCARD.hasTelephone, URIRef(f"tel:{phone}") if _TEL.match(phone) else Literal(phone)))
    add((ds, DCTERMS.accrualPeriodicity, FREQUENCY[dataset.update_cycle]))
    if dataset.release_date:
        add((ds, DCTERMS.issued, Literal(dataset.release_date, datatype=XSD.date)))
    add((ds, DCTERMS.modified, Literal(_modified(dataset, version), datatype=XSD.dateTime)))
    add((ds, DCTERMS.accessRights, ACCESS_RIGHTS[dataset.open_type]))
    theme = TOPIC_THEMES.get(dataset.topic or "") or LIBRARY_THEMES.get(dataset.base_library or "")
    if theme:
        add((ds, DCAT.theme, EU_THEME[theme]))
    add((ds, DCTERMS.type, _concept(g, ctx, dataset.category)))
    if dataset.topic:
        add((ds, ODH.topic, Literal(dataset.topic, lang=ZH)))
    if dataset.base_library:
        add((ds, ODH.baseLibrary, Literal(dataset.base_library, lang=ZH)))
    add((ds, ODH.shareType, _concept(g, ctx, dataset.share_type)))
    if dataset.share_condition:
        add((ds, ODH.shareCondition, Literal(dataset.share_condition, lang=ZH)))
    add((ds, ODH.shareMethod, _concept(g, ctx, dataset.share_method)))
    add((ds, ODH.openType, _concept(g, ctx, dataset.open_type)))
    if dataset.open_condition:
        add((ds, ODH.openCondition, Literal(dataset.open_condition, lang=ZH)))
    add((ds, ODH.securityGrade, _concept(g, ctx, dataset.security_grade)))
    add((ds, ODH.nationalLevel, _concept(g, ctx, dataset.national_level)))
    add((ds, ODH.collectionStatus, _concept(g, ctx, dataset.collection_status)))
    if dataset.status == DatasetStatus.withdrawn:
        add((ds, ADMS.status, URIRef("http://purl.org/adms/status/Withdrawn")))
    if version is not None:
        add((ds, DCAT.version, Literal(str(version.version))))
        add((ds, ODH.rowCount, Literal(version.row_count, datatype=XSD.nonNegativeInteger)))
    for other in dataset.related or []:
        target = by_code.get(other)
        if target is not None and ctx.sees(target):
            add((ds, DCTERMS.relation, ctx.dataset(other)))
    _add_schema(g, ctx, dataset, known)
    for channel in channels(ctx, dataset, version):
        if channel == "open":
            _open_distributions(g, ctx, dataset, version)
        else:
            _gateway_distributions(g, ctx, dataset, version)
    return ds


def _add_schema(g: Graph, ctx: ExportContext, dataset: Dataset, known: dict[int, Dataset]) -> None:
    code = dataset.code
    ds, schema = ctx.dataset(code), ctx.part(code, "schema")
    add = g.add
    add((ds, DCTERMS.conformsTo, schema))
    add((schema, RDF.type, CSVW.Schema))
    add((schema, RDF.type, DCTERMS.Standard))
    add((schema, DCTERMS.title, Literal(f"{dataset.name} 数据项", lang=ZH)))
    columns = []
    for item in sorted(dataset.items, key=lambda i: i.position):
        col = ctx.part(code, f"item-{item.code}")
        columns.append(col)
        add((col, RDF.type, CSVW.Column))
        add((col, CSVW.name, Literal(item.code)))
        add((col, CSVW.title, Literal(item.name, lang=ZH)))
        add((col, CSVW.datatype, XSD_TYPES[item.data_type]))
        add((col, CSVW.required, Literal(bool(item.required))))
        if item.is_key:
            add((schema, CSVW.primaryKey, Literal(item.code)))
        element = item.data_element
        std = ctx.standard(element.identifier, element.version)
        add((col, DCTERMS.conformsTo, std))
        if ctx.first(std):
            add((std, RDF.type, DCTERMS.Standard))
            add((std, DCTERMS.identifier, Literal(element.identifier)))
            add((std, DCTERMS.title, Literal(element.name, lang=ZH)))
            add((std, DCAT.version, Literal(element.version)))
            if element.definition:
                add((std, DCTERMS.description, Literal(element.definition, lang=ZH)))
            if element.published:
                add((std, DCTERMS.issued, Literal(element.published, datatype=XSD.date)))
        add((col, ODH.securityGrade, _concept(g, ctx, item.security_grade)))
        add((col, ODH.sensitivity, _concept(g, ctx, item.sensitivity)))
        add((col, ODH.itemSource, _concept(g, ctx, item.source)))
        ref = item.reference_item
        if ref is not None:
            target = known.get(ref.dataset_id)
            if target is not None and ctx.sees(target):
                add((col, ODH.sourceItem, ctx.part(target.code, f"item-{ref.code}")))
        masked = masked_by_default(item)
        add((col, ODH.masked, Literal(masked)))
        if masked:
            add((col, ODH.maskKind, Literal(mask_kind(item))))
    head = BNode()
    Collection(g, head, columns)
    add((schema, CSVW.column, head))


def _distribution(g: Graph, ctx: ExportContext, dataset: Dataset, version: DatasetVersion, channel: str,
                  fmt: str, media_type: str, file_type: URIRef | None, title: str) -> URIRef:
    ds = ctx.dataset(dataset.code)
    dist = ctx.part(dataset.code, f"v{version.version}-{channel}-{fmt}")
    g.add((ds, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    g.add((dist, DCTERMS.title, Literal(title, lang=ZH)))
    g.add((dist, DCAT.mediaType, URIRef(IANA + media_type)))
    if file_type is not None:
        g.add((dist, DCTERMS.format, file_type))
    g.add((dist, DCTERMS.issued, Literal(_utc(version.collected_at), datatype=XSD.dateTime)))
    g.add((dist, DCAT.version, Literal(str(version.version))))
    return dist


def _service(g: Graph, ctx: ExportContext, iri: URIRef, title: str, description: str, rights: URIRef,
             dataset: URIRef) -> URIRef:
    g.add((iri, DCAT.servesDataset, dataset))
    if not ctx.first(iri):
        return iri
    g.add((iri, RDF.type, DCAT.DataService))
    g.add((iri, DCTERMS.title, Literal(title, lang=ZH)))
    g.add((iri, DCTERMS.description, Literal(description, lang=ZH)))
    g.add((iri, DCAT.endpointURL, iri))
    g.add((iri, DCAT.endpointDescription, URIRef(f"{ctx.base}/openapi.json")))
    g.add((iri, DCTERMS.accessRights, rights))
    return iri


def _open_distributions(g: Graph, ctx: ExportContext, dataset: Dataset, version: DatasetVersion) -> None:
    ds = ctx.dataset(dataset.code)
    portal = _service(g, ctx, ctx.portal(), "开放数据门户", "无条件开放数据匿名下载（CSV / JSON / Parquet），按客户端限速",
                      EU_ACCESS.PUBLIC, ds)
    for fmt, media, file_type, whole in OPEN_FORMATS:
        url = ctx.open_download(dataset.code, version.version, fmt)
        title = f"开放下载（{FORMAT_NAMES[fmt]}，第 {version.version} 版）" if whole else \
            f"开放接口（{FORMAT_NAMES[fmt]} 分页，第 {version.version} 版）"
        dist = _distribution(g, ctx, dataset, version, "open", fmt, media, file_type, title)
        g.add((dist, DCAT.accessURL, URIRef(url)))
        g.add((dist, DCAT.accessService, portal))
        if not whole:
            continue
        g.add((dist, DCAT.downloadURL, URIRef(url)))
        digest = ctx.digest(dataset, version.version, fmt) if ctx.digest else None
        if digest is not None:
            g.add((dist, DCAT.byteSize, Literal(digest.bytes, datatype=XSD.nonNegativeInteger)))
            checksum = ctx.part(dataset.code, f"v{version.version}-open-{fmt}-sha256")
            g.add((dist, SPDX.checksum, checksum))
            g.add((checksum, RDF.type, SPDX.Checksum))
            g.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
            g.add((checksum, SPDX.checksumValue, Literal(digest.sha256, datatype=XSD.hexBinary)))


def _gateway_distributions(g: Graph, ctx: ExportContext, dataset: Dataset, version: DatasetVersion) -> None:
    ds = ctx.dataset(dataset.code)
    gateway = _service(g, ctx, ctx.gateway(), "数据共享网关",
                       "凭授权凭证（Authorization: Bearer odg_…）按授权范围读取数据：字段、行筛选、脱敏、配额均在服务端执行",
                       EU_ACCESS.RESTRICTED, ds)
    how = "受限开放：注册社会用户并提交开放申请，获批后凭授权凭证调用" if dataset.open_type == OpenType.restricted \
        else "共享申请获批后凭授权凭证调用"
    for fmt, media, file_type in GATEWAY_FORMATS:
        title = f"共享网关（{FORMAT_NAMES[fmt]}，第 {version.version} 版）"
        dist = _distribution(g, ctx, dataset, version, "gateway", fmt, media, file_type, title)
        g.add((dist, DCTERMS.description, Literal(how, lang=ZH)))
        g.add((dist, DCAT.accessURL, URIRef(ctx.gateway_rows(dataset.code, version.version, fmt))))
        g.add((dist, DCAT.accessService, gateway))


def to_turtle(g: Graph) -> bytes:
    return g.serialize(format="turtle", encoding="utf-8")


def to_jsonld(g: Graph) -> bytes:
    return g.serialize(format="json-ld", context=JSONLD_CONTEXT, auto_compact=True, encoding="utf-8")


# ---------------------------------------------------------------- Frictionless Data Package
DATAPACKAGE_PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
TABLESCHEMA_PROFILE = "https://datapackage.org/profiles/2.0/tableschema.json"
CSV_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # how the gateway's CSV writer (pyarrow) writes a timestamp


def table_pattern(pattern: str | None) -> str | None:
    """A standard's regex as a Table Schema pattern: implicitly anchored, no \\uXXXX escapes."""
    if not pattern:
        return None
    p = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), pattern)
    if p.startswith("^"):
        p = p[1:]
    if p.endswith("$") and not p.endswith("\\$"):
        p = p[:-1]
    return p


def _bound(value: Any, data_type: DataType) -> Any:
    if value is None:
        return None
    if data_type == DataType.integer:
        return int(value)
    if data_type == DataType.decimal:
        return value if isinstance(value, (int, float)) else float(value)
    if data_type in (DataType.date, DataType.datetime):
        return str(value)
    return None


def field_descriptor(item: DataItem, csv: bool) -> dict[str, Any]:
    element = item.data_element
    masked = masked_by_default(item)
    description = element.definition or ""
    if element.unit:
        description = f"{description}（单位：{element.unit}）" if description else f"单位：{element.unit}"
    out: dict[str, Any] = {"name": item.code, "title": item.name}
    if description:
        out["description"] = description
    out["x-element"] = {k: v for k, v in (("identifier", element.identifier), ("version", element.version),
                                          ("name", element.name), ("format", element.format),
                                          ("unit", element.unit)) if v}
    constraints: dict[str, Any] = {}
    if item.required:
        constraints["required"] = True
    if masked:
        out["type"] = "string"
        out["x-masked"] = True
        out["x-mask-kind"] = mask_kind(item)
        if item.data_type != DataType.string:
            out["x-element"]["data_type"] = item.data_type.value
    else:
        typ = TABLE_TYPES[item.data_type]
        out["type"] = typ
        if item.data_type == DataType.datetime and csv:
            out["format"] = CSV_DATETIME_FORMAT
        if item.data_type == DataType.string:
            if element.min_length:
                constraints["minLength"] = element.min_length
            max_length = item.length or element.max_length
            if max_length:
                constraints["maxLength"] = max_length
            pattern = table_pattern(element.pattern)
            if pattern:
                constraints["pattern"] = pattern
        if element.code_list:
            enum = _enum(element.code_list, item.data_type)
            if enum:
                constraints["enum"] = enum
                out["x-code-list"] = dict(element.code_list)
        vr = element.value_range or {}
        for key, name in (("min", "minimum"), ("max", "maximum")):
            bound = _bound(vr.get(key), item.data_type)
            if bound is not None:
                constraints[name] = bound
    if constraints:
        out["constraints"] = constraints
    return out


def _enum(code_list: dict[str, str], data_type: DataType) -> list[Any] | None:
    if data_type == DataType.string:
        return [str(k) for k in code_list]
    if data_type == DataType.integer:
        try:
            return [int(k) for k in code_list]
        except ValueError:
            return None
    return None


def table_schema(items: list[DataItem], csv: bool, objection: bool) -> dict[str, Any]:
    ordered = sorted(items, key=lambda i: i.position)
    fields = [field_descriptor(i, csv) for i in ordered]
    keys = [i for i in ordered if i.is_key]
    if len(keys) == 1 and not masked_by_default(keys[0]):
        for f in fields:
            if f["name"] == keys[0].code:
                f.setdefault("constraints", {})["unique"] = True
    if objection:
        fields.append({"name": OBJECTION_FIELD, "title": "异议标注", "type": "string",
                       "description": "该行存在未办结问题数据工单的数据项代码（逗号分隔）；无异议为空"})
    schema: dict[str, Any] = {"$schema": TABLESCHEMA_PROFILE, "fields": fields, "missingValues": [""]}
    if keys and not any(masked_by_default(k) for k in keys):
        schema["primaryKey"] = [k.code for k in keys]
    return schema


def datapackage(session: Session, ctx: ExportContext, dataset: Dataset) -> dict[str, Any]:
    version = latest_versions(session, [dataset]).get(dataset.id)
    ways = channels(ctx, dataset, version)
    code, name = dataset.code, dataset.code.lower()
    items = list(dataset.items)
    resource: dict[str, Any] = {"name": name, "type": "table", "title": dataset.name}
    if "open" in ways:
        resource.update(path=ctx.open_download(code, version.version, "csv"), format="csv", mediatype="text/csv",
                        encoding="utf-8",
                        description=f"第 {version.version} 版，开放下载（匿名可用；CSV 以 BOM 开头，便于表格软件打开）",
                        dialect={"$schema": "https://datapackage.org/profiles/2.0/tabledialect.json",
                                 "delimiter": ",", "header": True})
        digest = ctx.digest(dataset, version.version, "csv") if ctx.digest else None
        if digest is not None:
            resource.update(bytes=digest.bytes, hash=f"sha256:{digest.sha256}")
        resource["schema"] = table_schema(items, csv=True, objection=True)
    elif "gateway" in ways:
        resource.update(path=ctx.gateway_rows(code, version.version, "parquet"), format="parquet",
                        mediatype="application/vnd.apache.parquet",
                        description=(f"第 {version.version} 版，经共享网关读取：需授权凭证（Authorization: Bearer odg_…），"
                                     "返回授权范围内的字段与行（默认脱敏字段见 x-masked）；超过响应上限时以 X-Next-Cursor 续取"))
        resource["schema"] = table_schema(items, csv=False, objection=True)
    else:
        schema = table_schema(items, csv=False, objection=False)
        resource.update(data=[[f["name"] for f in schema["fields"]]], format="inline",
                        description=("尚未归集，暂无数据" if version is None else "调用方无可用的数据获取方式（如不予共享）")
                        + "：仅含表头，用于说明表结构")
        resource["schema"] = schema
    package: dict[str, Any] = {
        "$schema": DATAPACKAGE_PROFILE,
        "name": name,
        "id": str(ctx.dataset(code)),
        "title": dataset.name,
    }
    if dataset.summary:
        package["description"] = dataset.summary
    if dataset.keywords:
        package["keywords"] = list(dataset.keywords)
    if version is not None:
        package["version"] = f"{version.version}.0.0"
        package["created"] = _utc(version.collected_at).isoformat().replace("+00:00", "Z")
    package["contributors"] = [{"title": dataset.department.name, "roles": ["publisher"],
                                "path": str(ctx.department(dataset.department.code))}]
    if dataset.contact_name:
        package["contributors"].append({"title": dataset.contact_name, "roles": ["contact"],
                                        "organization": dataset.department.name})
    package["x-odh"] = {
        "code": code, "dcat": f"{ctx.dataset(code)}/dcat.jsonld", "category": dataset.category.value,
        "topic": dataset.topic, "share_type": dataset.share_type.value, "open_type": dataset.open_type.value,
        "security_grade": dataset.security_grade.value, "update_cycle": dataset.update_cycle.value,
        "latest_version": version.version if version else None, "row_count": version.row_count if version else None,
    }
    package["resources"] = [resource]
    return package


def to_json(package: dict[str, Any]) -> bytes:
    return json.dumps(package, ensure_ascii=False, indent=2).encode("utf-8")


# ---------------------------------------------------------------- sizes of open downloads
_DIGEST_CACHE: weakref.WeakKeyDictionary[Any, OrderedDict] = weakref.WeakKeyDictionary()
_DIGEST_LOCK = threading.Lock()
_DIGEST_ENTRIES = 256


def open_download_digest(runtime: Any, dataset: Dataset, version: int, fmt: str) -> Digest | None:
    """Size and SHA-256 of what `GET /open/v1/datasets/{code}/download?format=fmt&version=n` returns now: built
    through the gateway runtime exactly as the download is (same scope key, so the scope is shared with it), and
    cached per version, format and objection marks (the only part of a published version's download that changes).
    None when the download is not one whole file (the response-size ceiling cut it) or cannot be built."""
    key = ("open", dataset.id, version)
    try:
        scope = runtime.scope(key, dataset.id, version, public_specs, [])
        marks = scope.table.column(OBJECTION_COLUMN)
        fingerprint = hashlib.sha256()
        if marks.null_count < len(marks):
            where = pc.indices_nonzero(pc.is_valid(marks))
            fingerprint.update(where.to_numpy().tobytes())
            fingerprint.update("\x1f".join(pc.take(marks, where).to_pylist()).encode())
        cache_key = (dataset.id, version, fmt, fingerprint.hexdigest())
        with _DIGEST_LOCK:
            cache = _DIGEST_CACHE.setdefault(runtime, OrderedDict())
            if cache_key in cache:
                cache.move_to_end(cache_key)
                return cache[cache_key]
        page = runtime.serve(scope, scope_id=key, version=version, fmt=fmt, columns=None, filters=[], sort=None,
                             limit=None, cursor=None, rows_left=None, meta={"dataset": dataset.code},
                             paged=("json",), csv_bom=True)
    except (DomainError, OSError):
        return None
    if "X-Next-Cursor" in page.headers or not isinstance(page.body, bytes):
        digest = None
    else:
        digest = Digest(len(page.body), hashlib.sha256(page.body).hexdigest())
    with _DIGEST_LOCK:
        cache[cache_key] = digest
        while len(cache) > _DIGEST_ENTRIES:
            cache.popitem(last=False)
    return digest
