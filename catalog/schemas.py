"""Pydantic request and response bodies of the catalog API (with OpenAPI examples)."""
from __future__ import annotations

import datetime as dt
import re
from typing import Literal, Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from catalog.enums import (
    BaseLibrary,
    Category,
    CollectionStatus,
    DatasetStatus,
    DataType,
    ItemSource,
    NationalLevel,
    OpenType,
    Role,
    SecurityGrade,
    Sensitivity,
    ShareMethod,
    ShareType,
    UpdateCycle,
)

T = TypeVar("T")

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ItemCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
DatasetCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,15}-[0-9]{5}$")]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
ElementId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InputModel(BaseModel):
    """Base of every request body: text may not carry control characters (PostgreSQL cannot store NUL at all,
    and the same input must get the same answer on both databases)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and _CONTROL.search(t) for t in texts):
            raise ValueError("文本中不能包含控制字符（如 NUL）")
        return value


class Page(BaseModel, Generic[T]):
    total: int = Field(description="matching records in all pages")
    page: int
    page_size: int
    items: list[T]


class ErrorBody(BaseModel):
    error: str = Field(examples=["authoritative_source_conflict"])
    message: str = Field(examples=["数据元「公民身份号码」(DE0101001) 已有权威来源：示范市公安局「人口基本信息」(GAJ-00001)"])
    detail: list[dict[str, Any]] | None = None


# ---------------------------------------------------------------- departments, users, tokens
class DepartmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str = Field(examples=["GAJ"])
    name: str = Field(examples=["示范市公安局"])
    short_name: str | None = Field(default=None, examples=["公安局"])
    parent_code: str | None = None


class DepartmentIn(InputModel):
    code: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,15}$")] = Field(examples=["TJJ"])
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=128)] = Field(
        examples=["示范市统计局"]
    )
    short_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = Field(
        default=None, examples=["统计局"]
    )
    parent_code: str | None = Field(default=None, max_length=16, examples=[None])


class DepartmentPatch(InputModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=128)] | None = None
    short_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None


class MeOut(BaseModel):
    username: str
    display_name: str
    department: DepartmentOut
    roles: list[Role]


class UserIn(InputModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", examples=["rsj_zhang"])
    display_name: str = Field(min_length=1, max_length=128, examples=["市人力社保局 张伟"])
    department: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,15}$", examples=["RSJ"])
    roles: list[Literal["publisher", "consumer", "steward", "admin"]] = Field(min_length=1, max_length=4)
    password: str = Field(min_length=10, max_length=256)


class LoginIn(InputModel):
    username: str = Field(min_length=1, max_length=64, examples=["gaj_publisher"])
    password: str = Field(min_length=1, max_length=256, examples=["demo-gaj_publisher-2026"])
    token_name: str = Field(default="api", min_length=1, max_length=128)
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


class TokenCreated(BaseModel):
    id: int
    name: str
    token: str = Field(description="shown once; only its hash is stored", examples=["odh_3q…"])
    expires_at: dt.datetime | None


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


# ---------------------------------------------------------------- standards
class DataElementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    identifier: str = Field(examples=["DE0101001"])
    version: str = Field(examples=["1.0"])
    name: str = Field(examples=["公民身份号码"])
    name_en: str | None = None
    definition: str | None = None
    data_type: DataType
    format: str | None = Field(default=None, examples=["c18"])
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    code_list: dict[str, str] | None = None
    value_range: dict[str, Any] | None = None
    sensitivity: Sensitivity
    security_grade: SecurityGrade
    object_class_term: str | None = None
    representation_term: str | None = None
    unit: str | None = None
    source_org: str | None = None
    checks: list[str] = []
    published: dt.date | None = None
    remarks: str | None = None


class DataElementDetail(DataElementOut):
    versions: list[str] = Field(description="every version of this element, oldest first")
    authoritative_source: AuthoritativeSourceOut | None = None


class AuthoritativeSourceOut(BaseModel):
    dataset_code: str = Field(examples=["GAJ-00001"])
    dataset_name: str = Field(examples=["人口基本信息"])
    department_code: str = Field(examples=["GAJ"])
    department_name: str = Field(examples=["示范市公安局"])
    item_code: str = Field(examples=["sfzhm"])


# ---------------------------------------------------------------- datasets
class DataItemIn(InputModel):
    model_config = ConfigDict(extra="forbid")
    code: ItemCode = Field(examples=["sfzhm"], description="field code, unique within the dataset")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)] = Field(
        examples=["公民身份号码"]
    )
    element: ElementId = Field(examples=["DE0101001"], description="数据元 identifier (一标准)")
    element_version: Annotated[str, StringConstraints(max_length=16)] | None = Field(
        default=None, description="data element version; the latest when omitted"
    )
    length: int | None = Field(default=None, ge=1, le=1_000_000)
    required: bool = False
    is_key: bool = False
    source: ItemSource = Field(
        default=ItemSource.authoritative,
        description="authoritative: this dataset is the element's one source (一数一源); reference: a copy",
    )
    reference: DatasetCode | None = Field(
        default=None,
        description="for source=reference: the dataset holding the authoritative item (resolved when omitted)",
    )


class DatasetFields(InputModel):
    model_config = ConfigDict(extra="forbid")
    name: Text200 | None = None
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] | None = None
    keywords: list[Keyword] | None = Field(default=None, max_length=30)
    category: Category | None = None
    base_library: BaseLibrary | None = None
    topic: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    contact_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    contact_phone: Annotated[str, StringConstraints(pattern=r"^[0-9+\- ]{3,32}$")] | None = None
    share_type: ShareType | None = None
    share_condition: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    share_method: ShareMethod | None = None
    open_type: OpenType | None = None
    open_condition: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    update_cycle: UpdateCycle | None = None
    security_grade: SecurityGrade | None = None
    national_level: NationalLevel | None = None
    release_date: dt.date | None = None
    related: list[DatasetCode] | None = Field(default=None, max_length=50)
    items: list[DataItemIn] | None = Field(default=None, min_length=1, max_length=500)


class DatasetCreate(DatasetFields):
    code: DatasetCode | None = Field(
        default=None, description="资源代码; generated from the department code when omitted", examples=["SCJG-00099"]
    )
    department: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,15}$")] | None = Field(
        default=None, description="provider department code; the caller's own department when omitted"
    )
    name: Text200
    category: Category
    share_type: ShareType
    share_method: ShareMethod = ShareMethod.api
    open_type: OpenType
    update_cycle: UpdateCycle
    security_grade: SecurityGrade
    national_level: NationalLevel = NationalLevel.general
    items: list[DataItemIn] = Field(min_length=1, max_length=500)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "个体工商户登记信息",
                    "summary": "全市个体工商户的登记注册信息。",
                    "keywords": ["个体工商户", "登记"],
                    "category": "基础库",
                    "base_library": "法人库",
                    "topic": "市场监管",
                    "share_type": "有条件共享",
                    "share_condition": "用于履行市场监管、税务等法定职责",
                    "share_method": "接口",
                    "open_type": "禁止开放",
                    "update_cycle": "每日",
                    "security_grade": "L2",
                    "items": [
                        {"code": "tyshxydm", "name": "统一社会信用代码", "element": "DE0201001", "is_key": True,
                         "required": True, "source": "reference"},
                    ],
                }
            ]
        },
    )


class DatasetUpdate(DatasetFields):
    """Fields to change; omitted fields keep their value. `items`, when given, replaces the whole item list."""

    department: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,15}$")] | None = Field(
        default=None, description="transfer to another provider department (steward only)"
    )


class ElementRef(BaseModel):
    identifier: str
    version: str
    name: str


class DataItemOut(BaseModel):
    code: str
    name: str
    element: ElementRef
    data_type: DataType
    length: int | None
    required: bool
    is_key: bool
    sensitivity: Sensitivity
    security_grade: SecurityGrade
    source: ItemSource
    authoritative_source: AuthoritativeSourceOut | None = Field(
        default=None, description="for a reference: where the authoritative value lives"
    )


class DatasetSummary(BaseModel):
    code: str = Field(examples=["SCJG-00001"])
    name: str = Field(examples=["企业登记基本信息"])
    summary: str
    keywords: list[str]
    category: Category
    base_library: str | None
    topic: str | None
    department: DepartmentOut
    share_type: ShareType
    open_type: OpenType
    security_grade: SecurityGrade
    update_cycle: UpdateCycle
    collection_status: CollectionStatus
    status: DatasetStatus
    release_date: dt.date | None
    updated_at: dt.datetime


class DatasetOut(DatasetSummary):
    share_condition: str | None
    share_method: ShareMethod
    open_condition: str | None
    national_level: NationalLevel
    contact_name: str | None
    contact_phone: str | None
    latest_version: int | None
    row_count: int | None
    related: list[str]
    created_at: dt.datetime
    withdrawn_at: dt.datetime | None
    withdrawn_reason: str | None
    items: list[DataItemOut]


class SearchHit(DatasetSummary):
    score: float | None = Field(description="relevance; higher is better (null when not ranking by relevance)")
    highlights: dict[str, str | None] = Field(description="name and summary, HTML-escaped, matches in <em>")


class FacetValue(BaseModel):
    value: str
    count: int
    label: str | None = None


class SearchPage(BaseModel):
    total: int
    page: int
    page_size: int
    sort: str
    items: list[SearchHit]
    facets: dict[str, list[FacetValue]]


# ---------------------------------------------------------------- indicators
class CataloguingRate(BaseModel):
    department_code: str | None = Field(description="null for the whole catalog")
    department_name: str
    declared: int = Field(description="resources on the declared inventory (应编尽编)")
    catalogued: int = Field(description="of those, catalogued and not withdrawn")
    rate: float | None = Field(description="catalogued ÷ declared; null when nothing is declared")
    missing: list[str] = Field(description="inventory codes not yet catalogued")


class CataloguingIndicator(BaseModel):
    indicator: str = "数据编目率"
    overall: CataloguingRate
    departments: list[CataloguingRate]


class SqlPullIn(InputModel):
    url: Annotated[str, StringConstraints(min_length=3, max_length=1000)] = Field(
        description="SQLAlchemy URL of the source database; the password is never stored, logged or echoed",
        examples=["postgresql://reader:***@10.0.0.8/gaj"])
    query: Annotated[str, StringConstraints(min_length=6, max_length=20000)] = Field(
        examples=["SELECT sfzhm, xm, xb FROM rkjbxx"])


class DatasetVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    version: int
    row_count: int
    byte_size: int
    checksum: str = Field(description="SHA-256 of the Parquet snapshot")
    table_schema: dict[str, Any] = Field(description="column names, Arrow types and item names")
    collected_at: dt.datetime
    delivered_by: str | None = None


class CollectionRunOut(BaseModel):
    id: int
    status: str = Field(description="published | unchanged | failed")
    source_kind: str
    source_name: str | None
    file_format: str | None
    row_count: int | None
    version: int | None
    error: str | None
    delivered_by: str | None
    started_at: dt.datetime
    finished_at: dt.datetime


class CollectionOut(BaseModel):
    status: str = Field(description="published: a new version; unchanged: identical to the latest version")
    dataset_code: str
    collection_status: CollectionStatus
    run: CollectionRunOut
    version: DatasetVersionOut


class CollectionRate(BaseModel):
    department_code: str | None
    department_name: str
    required: int = Field(description="published resources, all of which are to be collected")
    collected: int = Field(description="of those, 归集状态 已归集")
    rate: float | None
    by_status: dict[str, int]


class CollectionIndicator(BaseModel):
    indicator: str = "数据归集率"
    overall: CollectionRate
    departments: list[CollectionRate]


DataElementDetail.model_rebuild()
