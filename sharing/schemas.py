"""Request and response models of the sharing API."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from catalog.schemas import InputModel

FilterOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "prefix", "is_null", "not_null"]
Scalar = str | int | float | bool


class FilterConditionIn(InputModel):
    field: str = Field(min_length=1, max_length=64)
    op: FilterOp
    value: Scalar | list[Scalar] | None = None


class ShareRequestIn(InputModel):
    dataset: str = Field(min_length=1, max_length=64, description="资源代码")
    purpose: str = Field(min_length=2, max_length=2000, description="用途")
    scenario: str = Field(default="", max_length=2000, description="应用场景")
    basis: str = Field(min_length=2, max_length=2000, description="依据（法律法规或履职依据）")
    fields: list[str] = Field(min_length=1, max_length=500, description="申请的数据项代码")
    row_filter: list[FilterConditionIn] = Field(default_factory=list, max_length=20,
                                                description="行筛选条件，全部条件同时满足（AND）")
    unmasked_fields: list[str] = Field(default_factory=list, max_length=500,
                                       description="申请明文（不脱敏）的字段，需大数据局审批")
    valid_until: dt.date = Field(description="有效期截止日期（含当日）")
    expected_volume: int | None = Field(default=None, ge=1, le=10**10, description="预计每日调用数据量（行）")


class ResubmitIn(InputModel):
    """After a return (退回补充材料): the consumer amends what was asked for and submits again."""

    purpose: str | None = Field(default=None, min_length=2, max_length=2000)
    scenario: str | None = Field(default=None, max_length=2000)
    basis: str | None = Field(default=None, min_length=2, max_length=2000)
    fields: list[str] | None = Field(default=None, min_length=1, max_length=500)
    row_filter: list[FilterConditionIn] | None = Field(default=None, max_length=20)
    unmasked_fields: list[str] | None = Field(default=None, max_length=500)
    valid_until: dt.date | None = None
    expected_volume: int | None = Field(default=None, ge=1, le=10**10)
    comment: str = Field(default="", max_length=2000)


class DecisionIn(InputModel):
    action: Literal["approve", "reject", "return"]
    reason: str = Field(default="", max_length=2000, description="驳回或退回时必填")
    # An approval may narrow what was asked for (never widen it); omitted means "as asked".
    fields: list[str] | None = Field(default=None, min_length=1, max_length=500)
    row_filter: list[FilterConditionIn] | None = Field(default=None, max_length=20)
    unmasked_fields: list[str] | None = Field(default=None, max_length=500)
    valid_until: dt.date | None = None
    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    rows_per_day: int | None = Field(default=None, ge=1, le=10**10)


class WithdrawIn(InputModel):
    reason: str = Field(default="", max_length=2000)


class RevokeIn(InputModel):
    reason: str = Field(min_length=2, max_length=2000)


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    actor: str | None
    actor_department: str | None
    stage: str
    action: str
    from_status: str | None
    to_status: str
    reason: str
    scope: dict[str, Any]


class ShareRequestOut(BaseModel):
    id: int
    kind: str
    dataset: str
    dataset_name: str
    provider_department: str
    consumer_department: str
    requested_by: str
    purpose: str
    scenario: str
    basis: str
    expected_volume: int | None
    fields: list[str]
    row_filter: list[dict[str, Any]]
    unmasked_fields: list[str]
    valid_until: dt.date
    approved_fields: list[str]
    approved_filter: list[dict[str, Any]]
    approved_unmasked: list[str]
    approved_valid_until: dt.date
    status: str
    status_name: str
    needs_steward: bool
    deadline: dt.datetime
    overdue: bool
    created_at: dt.datetime
    decided_at: dt.datetime | None
    grant_id: int | None
    decisions: list[DecisionOut]


class GrantOut(BaseModel):
    id: int
    request_id: int
    kind: str
    dataset: str
    dataset_name: str
    provider_department: str
    consumer_department: str
    fields: list[str]
    masked_fields: dict[str, str] = Field(description="脱敏字段 → 脱敏方式")
    row_filter: list[dict[str, Any]]
    unmasked_fields: list[str]
    valid_until: dt.datetime
    requests_per_minute: int
    rows_per_day: int
    status: str  # active | expired | revoked
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revoke_reason: str | None
    gateway_url: str


class CredentialOut(BaseModel):
    id: int
    grant_id: int
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class CredentialIssued(CredentialOut):
    credential: str = Field(description="只显示这一次；平台只保存其哈希")


class ShareRateOut(BaseModel):
    department: str
    department_name: str
    approved: int
    rejected: int
    pending: int
    pending_overdue: int
    rate: float | None = Field(description="数据共享率 = 通过 ÷ (已决定 + 超期未决)；无分母时为 null")


class OpenRateOut(BaseModel):
    open_items: int
    collected_items: int
    rate: float | None


class AuditEntryOut(BaseModel):
    seq: int
    at: dt.datetime
    kind: str
    action: str
    status: int
    actor_user_id: int | None
    actor_department: str | None
    grant_id: int | None
    request_id: int | None
    dataset: str | None
    provider_department: str | None
    consumer_department: str | None
    detail: dict[str, Any]
    hash: str


class RegisterIn(InputModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=10, max_length=200)
    display_name: str = Field(min_length=1, max_length=128)
    organisation: str = Field(default="", max_length=200, description="单位或个人")
    contact: str = Field(min_length=3, max_length=200, description="联系电话或邮箱")
