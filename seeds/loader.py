"""Load `seeds/` into the database through the same domain service the API uses, so every catalog rule holds.

Idempotent: departments, users and inventory entries are upserted by code; datasets that already exist are left
as they are (a demo catalog someone has edited is not reset by re-seeding).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.auth import Principal
from catalog.errors import DomainError
from catalog.models import Dataset, Department, InventoryEntry, User
from catalog.schemas import DatasetCreate
from catalog.search import CatalogSearch
from catalog.security import hash_password
from catalog.storage import Storage
from catalog.service import create_dataset
from schemas.loader import STANDARDS_DIR, load_standards, read_standards

SEEDS_DIR = Path(__file__).parent


class SeedError(ValueError):
    """The seed files are inconsistent; the message says which file and entry."""


@dataclass
class SeedReport:
    standards: dict[str, int] = field(default_factory=dict)
    departments: int = 0
    users: int = 0
    datasets_created: int = 0
    datasets_existing: int = 0
    inventory: int = 0
    deliveries: list[str] = field(default_factory=list)
    demo_users: list[dict[str, Any]] = field(default_factory=list)


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise SeedError(f"{path.name}: {exc}") from exc
    if not isinstance(data, list):
        raise SeedError(f"{path.name}: 顶层必须是列表")
    return data


def _dataset_body(entry: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in entry.items() if k not in ("provider", "contact")}
    body["department"] = entry.get("provider")
    contact = entry.get("contact") or {}
    body["contact_name"] = contact.get("name")
    body["contact_phone"] = str(contact["phone"]) if contact.get("phone") else None
    for item in body.get("items") or []:
        if item.get("element_version") is not None:
            item["element_version"] = str(item["element_version"])
    return {k: v for k, v in body.items() if v is not None}


def _load_order(entries: list[dict[str, Any]], origin: dict[str, str]) -> list[dict[str, Any]]:
    """Datasets holding an authoritative item come before the datasets that reference it."""
    source_of: dict[str, str] = {}
    for e in entries:
        for item in e.get("items") or []:
            if item.get("source", "authoritative") == "authoritative":
                source_of.setdefault(item["element"], e["code"])
    graph: dict[str, set[str]] = {}
    by_code = {}
    for e in entries:
        if e["code"] in by_code:
            raise SeedError(f"{origin[e['code']]}: 资源代码 {e['code']} 重复")
        by_code[e["code"]] = e
        deps = set()
        for item in e.get("items") or []:
            if item.get("source") == "reference":
                dep = item.get("reference") or source_of.get(item["element"])
                if dep and dep != e["code"]:
                    deps.add(dep)
        graph[e["code"]] = deps
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise SeedError(f"数据项引用成环：{exc.args[1]}") from exc
    return [by_code[c] for c in order if c in by_code]


def seed(session: Session, search: CatalogSearch, seeds_dir: Path = SEEDS_DIR,
         standards_dir: Path = STANDARDS_DIR, storage: Storage | None = None) -> SeedReport:
    """Load the seeds; with a storage, also collect the demo deliveries (with their deliberate problems)."""
    report = SeedReport()
    report.standards = load_standards(session, read_standards(standards_dir))

    departments = {d.code: d for d in session.execute(select(Department)).scalars()}
    dept_entries = _read(seeds_dir / "departments.yaml")
    for entry in dept_entries:
        dept = departments.get(entry["code"]) or Department(code=entry["code"])
        dept.name = entry["name"]
        dept.short_name = entry.get("short_name")
        if dept.id is None:
            session.add(dept)
        departments[dept.code] = dept
        report.departments += 1
    session.flush()
    for entry in dept_entries:
        if entry.get("parent"):
            if entry["parent"] not in departments:
                raise SeedError(f"departments.yaml: {entry['code']} 的上级部门 {entry['parent']} 不存在")
            departments[entry["code"]].parent_id = departments[entry["parent"]].id

    users = {u.username: u for u in session.execute(select(User)).scalars()}
    for entry in _read(seeds_dir / "users.yaml"):
        if entry["department"] not in departments:
            raise SeedError(f"users.yaml: 用户 {entry['username']} 的部门 {entry['department']} 不存在")
        user = users.get(entry["username"])
        if user is None:
            user = User(username=entry["username"], password_hash=hash_password(entry["password"]))
            session.add(user)
            users[user.username] = user
        user.display_name = entry["display_name"]
        user.department = departments[entry["department"]]
        user.roles = list(entry["roles"])
        report.users += 1
        report.demo_users.append({"username": user.username, "password": entry["password"],
                                  "department": entry["department"], "roles": list(entry["roles"])})
    session.flush()

    steward = next((u for u in users.values() if "steward" in (u.roles or [])), None)
    if steward is None:
        raise SeedError("users.yaml: 至少需要一个 steward 用户来登记种子资源")
    actor = Principal.of(steward)

    entries: list[dict[str, Any]] = []
    origin: dict[str, str] = {}
    for path in sorted((seeds_dir / "datasets").glob("*.yaml")):
        for entry in _read(path):
            entries.append(entry)
            origin[entry.get("code", "?")] = path.name
    existing = set(session.execute(select(Dataset.code)).scalars())
    related: dict[str, list[str]] = {}
    for entry in _load_order(entries, origin):
        if entry["code"] in existing:
            report.datasets_existing += 1
            continue
        try:
            body = DatasetCreate.model_validate(_dataset_body(entry))
            # Related resources may point forward in the files: they are linked once every dataset exists.
            related[entry["code"]] = body.related or []
            body.related = None
            create_dataset(session, search, actor, body)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SeedError(f"{origin[entry['code']]} {entry['code']}: 字段 {'.'.join(map(str, first['loc']))} "
                            f"{first['msg']}") from exc
        except DomainError as exc:
            raise SeedError(f"{origin[entry['code']]} {entry['code']}: {exc.message}") from exc
        report.datasets_created += 1
    if related:
        datasets = {d.code: d for d in session.execute(select(Dataset)).unique().scalars()}
        for code, links in related.items():
            unknown = [c for c in links if c not in datasets]
            if unknown:
                raise SeedError(f"{origin[code]} {code}: 相关资源不存在：{'、'.join(unknown)}")
            datasets[code].related = links

    inventory = {e.code: e for e in session.execute(select(InventoryEntry)).scalars()}
    for entry in _read(seeds_dir / "inventory.yaml"):
        if entry["department"] not in departments:
            raise SeedError(f"inventory.yaml: {entry['code']} 的部门 {entry['department']} 不存在")
        row = inventory.get(entry["code"]) or InventoryEntry(code=entry["code"])
        row.name = entry["name"]
        row.department_id = departments[entry["department"]].id
        if row.id is None:
            session.add(row)
        report.inventory += 1
    session.flush()
    if storage is not None:
        report.deliveries = deliver_demo_data(session, storage, users)
    return report


def deliver_demo_data(session: Session, storage: Storage, users: dict[str, User]) -> list[str]:
    """Collect each demo delivery once (a dataset that already has a version is left alone), as a publisher of the
    providing department where the seeds have one; quality runs and opens its tickets."""
    import tempfile

    from catalog import collection
    from catalog.service import find_dataset
    from quality.service import run_quality
    from seeds.deliveries import DELIVERIES, csv_bytes

    done = []
    for code, (filename, rows) in DELIVERIES.items():
        dataset = find_dataset(session, code)
        if collection.latest_version(session, dataset.id) is not None:
            continue
        deliverer = next((u for u in users.values() if u.department_id == dataset.department_id
                          and "publisher" in (u.roles or [])), None) or \
            next(u for u in users.values() if "steward" in (u.roles or []))
        with tempfile.TemporaryDirectory(prefix="odh-seed-") as tmp:
            path = Path(tmp) / filename
            path.write_bytes(csv_bytes(rows()))
            result = collection.deliver(session, storage, Principal.of(deliverer), dataset,
                                        collection.Delivery(kind="upload", name=filename, path=path, file_format="csv"))
        run_quality(session, storage, dataset, result.version)
        done.append(code)
    return done
