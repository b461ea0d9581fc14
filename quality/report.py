"""The steward's quality report: per department and per dataset — dimension scores, trend across versions, open
and overdue tickets, worst rules. One builder feeds the JSON API, the CSV export and the HTML page."""
from __future__ import annotations

import csv
import io
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Dataset, DatasetVersion, Department
from quality import tickets
from quality.models import ProblemTicket, QualityRun
from quality.suite import DIMENSIONS


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def build_report(session: Session) -> dict:
    departments = {d.id: d for d in session.execute(select(Department)).scalars()}
    datasets = {d.id: d for d in session.execute(select(Dataset)).unique().scalars()}
    versions = dict(session.execute(select(DatasetVersion.id, DatasetVersion.version)).all())
    runs_by_dataset: dict[int, list[QualityRun]] = defaultdict(list)
    for run in session.execute(select(QualityRun).order_by(QualityRun.id)).scalars():
        runs_by_dataset[run.dataset_id].append(run)
    all_tickets = list(session.execute(select(ProblemTicket)).scalars())

    dataset_rows = []
    for dataset_id, runs in runs_by_dataset.items():
        ds = datasets[dataset_id]
        latest = runs[-1]
        # Trend: the last run of each version, oldest first.
        per_version: dict[int, QualityRun] = {}
        for run in runs:
            per_version[versions[run.version_id]] = run
        open_t = [t for t in all_tickets if t.dataset_id == dataset_id and t.status in tickets.ACTIVE]
        worst = sorted((r for r in latest.rule_results if r.failing), key=lambda r: (-r.rate, r.rule_id))[:5]
        dataset_rows.append({
            "dataset_code": ds.code, "dataset_name": ds.name, "department_code": departments[ds.department_id].code,
            "department_name": departments[ds.department_id].name, "latest_version": versions[latest.version_id],
            "overall_score": latest.overall_score, "scores": latest.scores,
            "trend": [{"version": v, "overall_score": r.overall_score, "scores": r.scores}
                      for v, r in sorted(per_version.items())],
            "open_tickets": len(open_t), "overdue_tickets": sum(tickets.is_overdue(t) for t in open_t),
            "worst_rules": [{"rule_id": r.rule_id, "dimension": r.dimension, "description": r.description,
                             "failing": r.failing, "evaluated": r.evaluated, "rate": r.rate} for r in worst],
        })
    dataset_rows.sort(key=lambda r: (r["overall_score"] if r["overall_score"] is not None else 101, r["dataset_code"]))

    dept_rows = []
    by_dept: dict[str, list[dict]] = defaultdict(list)
    for row in dataset_rows:
        by_dept[row["department_code"]].append(row)
    for dept in sorted(departments.values(), key=lambda d: d.code):
        rows = by_dept.get(dept.code, [])
        assigned = [t for t in all_tickets if t.assigned_department_id == dept.id]
        if not rows and not assigned:
            continue
        dept_rows.append({
            "department_code": dept.code, "department_name": dept.name, "datasets_checked": len(rows),
            "overall_score": _mean([r["overall_score"] for r in rows]),
            "scores": {dim: _mean([r["scores"].get(dim) for r in rows]) for dim in DIMENSIONS},
            "open_tickets_assigned": sum(t.status in tickets.ACTIVE for t in assigned),
            "overdue_tickets_assigned": sum(tickets.is_overdue(t) for t in assigned),
            "disputed_tickets": sum(t.status == tickets.DISPUTED for t in assigned),
        })
    worst_rules = sorted(({**w, "dataset_code": r["dataset_code"], "dataset_name": r["dataset_name"]}
                          for r in dataset_rows for w in r["worst_rules"]), key=lambda w: -w["rate"])[:10]
    return {"dimensions": list(DIMENSIONS), "departments": dept_rows, "datasets": dataset_rows,
            "worst_rules": worst_rules}


def report_csv(report: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["资源代码", "资源名称", "部门", "最新版本", "综合得分", *report["dimensions"], "未办结工单", "超期工单"])
    for r in report["datasets"]:
        writer.writerow([r["dataset_code"], r["dataset_name"], r["department_name"], r["latest_version"],
                         r["overall_score"], *[r["scores"].get(d) for d in report["dimensions"]], r["open_tickets"],
                         r["overdue_tickets"]])
    return "\ufeff" + buf.getvalue()  # BOM: Excel opens UTF-8 CSV correctly only with it
