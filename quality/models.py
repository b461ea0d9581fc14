"""Quality runs and their per-rule results (stored per dataset version)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.models import Base, utcnow


class QualityRun(Base):
    __tablename__ = "quality_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True)
    executor: Mapped[str] = mapped_column(String(16))  # fast | gx
    row_count: Mapped[int] = mapped_column(BigInteger)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)  # dimension → 0–100, or null when no rule judges it
    overall_score: Mapped[float | None] = mapped_column(Float)
    failing_keys_path: Mapped[str | None] = mapped_column(String(1024))  # Parquet of every failing (rule, row, key)
    gx_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the GX validation result, when GX ran
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    rule_results: Mapped[list[QualityRuleResult]] = relationship(back_populates="run", cascade="all, delete-orphan",
                                                                  order_by="QualityRuleResult.id")


class QualityRuleResult(Base):
    __tablename__ = "quality_rule_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("quality_runs.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    dimension: Mapped[str] = mapped_column(String(8))
    columns: Mapped[list[str]] = mapped_column(JSON)
    element_identifier: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    evaluated: Mapped[int] = mapped_column(BigInteger)
    failing: Mapped[int] = mapped_column(BigInteger)
    rate: Mapped[float] = mapped_column(Float)
    sample_keys: Mapped[list[str]] = mapped_column(JSON)  # the first failing row keys; all are in the run's Parquet

    run: Mapped[QualityRun] = relationship(back_populates="rule_results")




class ProblemTicket(Base):
    """问题数据工单: one per (dataset, failing rule) while open, or one per consumer/public report."""

    __tablename__ = "problem_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    origin: Mapped[str] = mapped_column(String(16))  # quality | report
    rule_id: Mapped[str | None] = mapped_column(String(128))
    # Set while the ticket is open, NULL once it is verified or closed: its unique index keeps one open ticket per
    # (dataset, rule), also against two quality runs racing.
    open_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    dimension: Mapped[str | None] = mapped_column(String(8))
    item_code: Mapped[str | None] = mapped_column(String(64))
    element_identifier: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    assigned_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    first_receiver_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))  # 首问
    reporter_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reporter_contact: Mapped[str | None] = mapped_column(String(200))
    latest_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id"))
    latest_run_id: Mapped[int | None] = mapped_column(ForeignKey("quality_runs.id"))
    failing_count: Mapped[int | None] = mapped_column(BigInteger)
    evaluated: Mapped[int | None] = mapped_column(BigInteger)
    sample_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    runs_seen: Mapped[int] = mapped_column(BigInteger, default=1)
    deadline: Mapped[dt.datetime] = mapped_column()
    escalated_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column()

    events: Mapped[list[TicketEvent]] = relationship(back_populates="ticket", cascade="all, delete-orphan",
                                                     order_by="TicketEvent.id")


class TicketEvent(Base):
    """Every transition: who, when, from → to, and why."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("problem_tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # null: the platform itself
    actor_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text)

    ticket: Mapped[ProblemTicket] = relationship(back_populates="events")
