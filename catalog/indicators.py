"""Indicators computed from the catalog (DOMAIN.md "Indicators"), never typed in."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.enums import CollectionStatus, DatasetStatus
from catalog.models import CollectionRun, Dataset, DatasetVersion, Department, InventoryEntry
from catalog.schemas import CataloguingIndicator, CataloguingRate, CollectionIndicator, CollectionRate


def cataloguing_rate(session: Session) -> CataloguingIndicator:
    """数据编目率 = catalogued resources ÷ resources on the declared inventory (应编尽编), per department and overall.

    An inventory entry counts as catalogued when a dataset with its code is in the catalog and not withdrawn.
    """
    catalogued = set(session.execute(
        select(Dataset.code).where(Dataset.status == DatasetStatus.published)
    ).scalars())
    rows = session.execute(
        select(InventoryEntry.code, Department.code, Department.name)
        .join(Department, Department.id == InventoryEntry.department_id)
        .order_by(Department.code, InventoryEntry.code)
    ).all()
    per_dept: dict[str, tuple[str, list[str], list[str]]] = {}
    for code, dept_code, dept_name in rows:
        _, done, missing = per_dept.setdefault(dept_code, (dept_name, [], []))
        (done if code in catalogued else missing).append(code)

    def rate(dept_code: str | None, name: str, done: list[str], missing: list[str]) -> CataloguingRate:
        declared = len(done) + len(missing)
        return CataloguingRate(department_code=dept_code, department_name=name, declared=declared,
                               catalogued=len(done), rate=round(len(done) / declared, 4) if declared else None,
                               missing=missing)

    departments = [rate(code, name, done, missing) for code, (name, done, missing) in per_dept.items()]
    all_done = [c for _, d, _ in per_dept.values() for c in d]
    all_missing = [c for _, _, m in per_dept.values() for c in m]
    return CataloguingIndicator(overall=rate(None, "全市", all_done, all_missing), departments=departments)


def collection_rate(session: Session) -> CollectionIndicator:
    """数据归集率 = resources whose 归集状态 is 已归集 ÷ resources required to be collected (every published one)."""
    rows = session.execute(
        select(Department.code, Department.name, Dataset.collection_status)
        .join(Department, Department.id == Dataset.department_id)
        .where(Dataset.status == DatasetStatus.published)
        .order_by(Department.code)
    ).all()
    per_dept: dict[str, tuple[str, dict[str, int]]] = {}
    for code, name, status in rows:
        counts = per_dept.setdefault(code, (name, {s.value: 0 for s in CollectionStatus}))[1]
        counts[CollectionStatus(status).value] += 1

    def rate(code: str | None, name: str, counts: dict[str, int]) -> CollectionRate:
        required = sum(counts.values())
        done = counts[CollectionStatus.collected.value]
        return CollectionRate(department_code=code, department_name=name, required=required, collected=done,
                              rate=round(done / required, 4) if required else None, by_status=counts)

    total = {s.value: sum(c[s.value] for _, c in per_dept.values()) for s in CollectionStatus}
    return CollectionIndicator(overall=rate(None, "全市", total),
                               departments=[rate(code, name, counts) for code, (name, counts) in per_dept.items()])


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value


def daily_trend(session: Session, days: int = 30, now: dt.datetime | None = None) -> list[dict]:
    """编目率 and 归集率 as they stood at the end of each of the last `days` days (Beijing time), recomputed from the
    timestamps the platform keeps (dataset created/withdrawn, versions, collection runs) — nothing is stored or typed
    in, so the trend of a fresh deployment starts on its first day."""
    from catalog.collection import derive_status  # collection imports this module's neighbours; keep it lazy

    now = _aware(now) or dt.datetime.now(dt.timezone.utc)
    china = dt.timezone(dt.timedelta(hours=8))
    today = now.astimezone(china).date()
    datasets = [(d.id, d.code, _aware(d.created_at), _aware(d.withdrawn_at), d) for d in session.execute(
        select(Dataset)).unique().scalars()]
    inventory = set(session.execute(select(InventoryEntry.code)).scalars())
    versions: dict[int, list[dt.datetime]] = {}
    for dataset_id, at in session.execute(select(DatasetVersion.dataset_id, DatasetVersion.collected_at)):
        versions.setdefault(dataset_id, []).append(_aware(at))
    runs: dict[int, list[tuple[dt.datetime, str]]] = {}
    for dataset_id, at, status in session.execute(
            select(CollectionRun.dataset_id, CollectionRun.finished_at, CollectionRun.status).order_by(CollectionRun.id)):
        runs.setdefault(dataset_id, []).append((_aware(at), status))
    points = []
    for back in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=back)
        end = min(now, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), china))
        alive = [(i, code, d) for i, code, created, withdrawn, d in datasets
                 if created <= end and (withdrawn is None or withdrawn > end)]
        catalogued = sum(1 for _, code, _ in alive if code in inventory)
        collected = 0
        for i, _, d in alive:
            good = [at for at in versions.get(i, []) if at <= end]
            past_runs = [status for at, status in runs.get(i, []) if at <= end]
            if derive_status(d, max(good) if good else None, bool(past_runs) and past_runs[-1] == "failed",
                             end) == CollectionStatus.collected:
                collected += 1
        points.append({"day": day, "编目率": catalogued / len(inventory) if inventory else None,
                       "归集率": collected / len(alive) if alive else None})
    return points
