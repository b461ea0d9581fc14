"""Share requests (共享申请 / 开放申请), their decisions, grants, grant credentials and the hash-chained audit log."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.models import Base, Dataset, Department, User, utcnow


class ShareRequest(Base):
    """A consumer department's request for (part of) a dataset; kind "open" is an outside user's 开放申请."""

    __tablename__ = "share_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), default="share")  # share | open
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(Text)  # 用途
    scenario: Mapped[str] = mapped_column(Text, default="")  # 应用场景
    basis: Mapped[str] = mapped_column(Text)  # 依据
    expected_volume: Mapped[int | None] = mapped_column(BigInteger)  # rows per day the consumer expects to read
    # What was asked for, kept as asked; the approved scope lives beside it and may only be narrower.
    fields: Mapped[list[str]] = mapped_column(JSON)
    row_filter: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    unmasked_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    valid_until: Mapped[dt.date] = mapped_column(Date)
    approved_fields: Mapped[list[str]] = mapped_column(JSON)
    approved_filter: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    approved_unmasked: Mapped[list[str]] = mapped_column(JSON, default=list)
    approved_valid_until: Mapped[dt.date] = mapped_column(Date)
    # Quotas an approver set (provider or steward); the grant falls back to the platform defaults.
    approved_requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    approved_rows_per_day: Mapped[int | None] = mapped_column(BigInteger)
    # submitted → (provider) → pending_steward → approved | rejected | returned → submitted; withdrawn by the consumer.
    status: Mapped[str] = mapped_column(String(16), index=True)
    needs_steward: Mapped[bool] = mapped_column(Boolean, default=False)
    deadline: Mapped[dt.datetime] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column()

    dataset: Mapped[Dataset] = relationship(lazy="joined")
    consumer_department: Mapped[Department] = relationship(foreign_keys=[consumer_department_id], lazy="joined")
    provider_department: Mapped[Department] = relationship(foreign_keys=[provider_department_id], lazy="joined")
    requested_by: Mapped[User] = relationship(lazy="joined")
    decisions: Mapped[list[ShareDecision]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                          order_by="ShareDecision.id")


class ShareDecision(Base):
    """Every move on a request: who, which department, in which role, what, why, and the scope after it."""

    __tablename__ = "share_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("share_requests.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # null: the platform (automatic)
    actor_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    stage: Mapped[str] = mapped_column(String(16))  # auto | provider | steward | consumer
    action: Mapped[str] = mapped_column(String(16))  # submit | approve | reject | return | resubmit | withdraw
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    request: Mapped[ShareRequest] = relationship(back_populates="decisions")


class Grant(Base):
    """An approved request's scope, which the gateway enforces for every call made with its credential."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("share_requests.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(8), default="share")
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    grantee_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    fields: Mapped[list[str]] = mapped_column(JSON)
    row_filter: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    unmasked_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    valid_until: Mapped[dt.datetime] = mapped_column()  # exclusive: the grant stops working at this instant
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    rows_per_day: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(Text)

    request: Mapped[ShareRequest] = relationship(lazy="joined")
    dataset: Mapped[Dataset] = relationship(lazy="joined")


class GrantCredential(Base):
    """The secret a consumer system presents to the gateway; bound to one grant, shown once, stored hashed."""

    __tablename__ = "grant_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class AuditEntry(Base):
    """One gateway call or decision. `hash` = SHA-256 over the previous entry's hash and this entry's content, so an
    edit, deletion or reordering breaks the chain at the first entry touched (`opendata audit verify`)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))  # gateway | decision | grant | credential | open
    action: Mapped[str] = mapped_column(String(48))
    status: Mapped[int] = mapped_column(Integer)  # HTTP status of a call; 0 for decisions
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_department_id: Mapped[int | None] = mapped_column(Integer)
    grant_id: Mapped[int | None] = mapped_column(Integer, index=True)
    request_id: Mapped[int | None] = mapped_column(Integer)
    dataset_id: Mapped[int | None] = mapped_column(Integer)
    provider_department_id: Mapped[int | None] = mapped_column(Integer, index=True)
    consumer_department_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's tip (one row). Writers lock it, so entries from every worker process form one chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
