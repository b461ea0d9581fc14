"""Quality runs: the generated suite over a published version, results and dimension scores stored per version."""
from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.auth import Principal
from catalog.collection import latest_version
from catalog.enums import CollectionStatus
from catalog.errors import NotFound
from catalog.models import Dataset, DatasetVersion, utcnow
from catalog.permissions import check_update_dataset
from catalog.storage import Storage
from quality.executor import RuleOutcome, run_rules, run_rules_streaming
from quality.models import QualityRuleResult, QualityRun
from quality.suite import DIMENSIONS, TIMELINESS, generate_rules, key_columns

SAMPLE_KEYS = 20


def check_read_quality(principal: Principal | None, dataset: Dataset) -> Principal:
    """Results quote failing row keys (ID numbers, names): the provider department and the steward only."""
    return check_update_dataset(principal, dataset)


def row_keys(table: pa.Table, columns: list[str]) -> pa.Array:
    parts = [pc.fill_null(pc.cast(table.column(c), pa.string()), "∅") for c in columns]
    if len(parts) == 1:
        return parts[0].combine_chunks()
    return pc.binary_join_element_wise(*parts, "|").combine_chunks()


def dimension_scores(outcomes: list[RuleOutcome], fresh: bool) -> dict[str, float | None]:
    """Per GB/T 36344 dimension: 100 × (1 − failing ÷ judged) over its rules; 时效性 from the update cycle."""
    scores: dict[str, float | None] = {}
    for dimension in DIMENSIONS:
        judged = sum(o.evaluated for o in outcomes if o.rule.dimension == dimension)
        failing = sum(o.failing_count for o in outcomes if o.rule.dimension == dimension)
        scores[dimension] = round(100 * (1 - failing / judged), 2) if judged else None
    scores[TIMELINESS] = 100.0 if fresh else 0.0
    return scores


def run_quality(session: Session, storage: Storage, dataset: Dataset, version: DatasetVersion | None = None,
                executor: str = "fast", gx_docs_root: str | None = None) -> QualityRun:
    version = version or latest_version(session, dataset.id)
    if version is None:
        raise NotFound(f"资源 {dataset.code} 还没有已发布的版本，无法进行质量检查")
    started = utcnow()
    rules = generate_rules(dataset)
    sources = _source_tables(session, storage, rules)
    gx_result = None
    with storage.open(version.path, "rb") as fh:
        parquet = pq.ParquetFile(fh)
        row_count = parquet.metadata.num_rows
        if executor == "gx":
            from quality.gx_executor import GX_KINDS, run_gx

            table = parquet.read()  # GX validates a pandas DataFrame: the whole table is needed
            outcomes, gx_result = run_gx([r for r in rules if r.kind in GX_KINDS], table,
                                         f"{dataset.code}-v{version.version}", docs_root=gx_docs_root)
            outcomes += run_rules([r for r in rules if r.kind not in GX_KINDS], table, sources)
        else:
            outcomes = run_rules_streaming(rules, parquet, sources)
        keys = row_keys(parquet.read(columns=key_columns(dataset)), key_columns(dataset))
    failing_path = _write_failing_keys(storage, dataset, version, outcomes, keys)
    scores = dimension_scores(outcomes, dataset.collection_status == CollectionStatus.collected)
    present = [s for s in scores.values() if s is not None]
    run = QualityRun(dataset_id=dataset.id, version_id=version.id, executor=executor, row_count=row_count,
                     scores=scores, overall_score=round(sum(present) / len(present), 2) if present else None,
                     failing_keys_path=failing_path, gx_result=gx_result, started_at=started, finished_at=utcnow())
    for o in outcomes:
        sample = keys.take(pa.array(o.failing[:SAMPLE_KEYS])).to_pylist() if o.failing_count else []
        run.rule_results.append(QualityRuleResult(
            rule_id=o.rule.id, kind=o.rule.kind, dimension=o.rule.dimension, columns=list(o.rule.columns),
            element_identifier=o.rule.element, description=o.rule.description, evaluated=o.evaluated,
            failing=o.failing_count, rate=round(o.rate, 6), sample_keys=sample))
    session.add(run)
    session.flush()
    from quality.tickets import sync_quality_tickets

    sync_quality_tickets(session, dataset, run)
    return run


def _source_tables(session: Session, storage: Storage, rules) -> dict[int, pa.Table | None]:  # noqa: ANN001
    """The latest published version of each authoritative dataset a consistency rule compares with (needed columns)."""
    needed: dict[int, set[str]] = {}
    for rule in rules:
        if rule.kind == "consistency":
            needed.setdefault(rule.params["source_dataset_id"], set()).update(
                {rule.params["source_key"], rule.params["source_column"]})
    tables: dict[int, pa.Table | None] = {}
    for dataset_id, columns in needed.items():
        version = latest_version(session, dataset_id)
        if version is None:
            tables[dataset_id] = None
            continue
        with storage.open(version.path, "rb") as fh:
            tables[dataset_id] = pq.read_table(fh, columns=sorted(columns))
    return tables


def _write_failing_keys(storage: Storage, dataset: Dataset, version: DatasetVersion, outcomes: list[RuleOutcome],
                        keys: pa.Array) -> str | None:
    failing = [o for o in outcomes if o.failing_count]
    if not failing:
        return None
    rows = np.concatenate([o.failing for o in failing])
    table = pa.table({
        "rule_id": pa.array(np.repeat([o.rule.id for o in failing], [o.failing_count for o in failing])),
        "row": pa.array(rows),
        "key": keys.take(pa.array(rows)),
    })
    directory = storage.path(dataset.code, "quality")
    storage.fs.makedirs(directory, exist_ok=True)
    path = f"{directory}/v{version.version:06d}-{uuid.uuid4().hex[:12]}.parquet"
    with storage.open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
    return path


def failing_keys(storage: Storage, run: QualityRun, rule_id: str, offset: int, limit: int) -> tuple[int, list[str]]:
    if not run.failing_keys_path:
        return 0, []
    with storage.open(run.failing_keys_path, "rb") as fh:
        table = pq.read_table(fh, filters=[("rule_id", "=", rule_id)], columns=["key"])
    return table.num_rows, table.column("key").slice(offset, limit).to_pylist()


def failing_values(storage: Storage, run: QualityRun, version_path: str, rule_id: str, column: str, offset: int,
                   limit: int) -> tuple[int, list[tuple[str, object]]]:
    """A page of (row key, value of `column`) for the rows the rule failed: the rows as the run found them in its
    version, read from the version's Parquet (that column only). No rows when the column is not in the version."""
    if not run.failing_keys_path:
        return 0, []
    with storage.open(run.failing_keys_path, "rb") as fh:
        found = pq.read_table(fh, filters=[("rule_id", "=", rule_id)], columns=["row", "key"])
    chunk = found.slice(offset, limit)
    if not chunk.num_rows:
        return found.num_rows, []
    with storage.open(version_path, "rb") as fh:
        parquet = pq.ParquetFile(fh)
        if column not in parquet.schema_arrow.names:
            return found.num_rows, []
        values = parquet.read(columns=[column]).column(column).take(chunk.column("row")).to_pylist()
    return found.num_rows, list(zip(chunk.column("key").to_pylist(), values, strict=True))


def latest_run(session: Session, dataset: Dataset) -> QualityRun | None:
    return session.execute(select(QualityRun).where(QualityRun.dataset_id == dataset.id)
                           .order_by(QualityRun.id.desc()).limit(1)).scalar_one_or_none()
