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


