"""Harvest runs: pull a remote catalog's changes since the last run, one transaction per page of packages.

Listing the changes (the first way the remote accepts is used, and recorded on the run):
- `search`: package_search fq=metadata_modified:[<watermark> TO *] sort=metadata_modified asc — CKAN with Solr.
  Pages are keyed on the newest metadata_modified seen (start only advances within equal timestamps), so a package
  changed during the run moves behind the cursor instead of shifting another out of the window; the watermark
  advances with every committed page.
- `search_desc`: package_search sort=metadata_modified desc, paged until a package older than the watermark — this
  product's CKAN API (no range queries). The watermark advances only after a complete sweep during which the
  remote's count did not change (a deletion mid-sweep could shift a package past a page boundary).
- `list`: package_list, then package_show per package — any CKAN-like API; every package is read every run.
Each run starts OVERLAP before the watermark (late commits). A package whose metadata_modified equals the one
mirrored is left alone; one whose mapped content is unchanged only has its remote timestamp noted. Then the full
package_list is reconciled: a listed package never seen here is fetched (so a late commit older than the overlap
is not lost for good), and a package mirrored here that the list no longer names is checked with package_show
(Not Found, Authorization Error or `state: deleted` → withdrawn here; still active → kept), so a listing that
misses a package can never withdraw it.

Failures: a remote call that fails for good stops this source's run (pages already committed stay, nothing of the
failing page is written, the watermark stays at the last committed page) and is recorded on the run; one bad
package is skipped and reported (`problems`) without stopping the page. Runs of other sources go on regardless.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from catalog.db import Database
from catalog.enums import DatasetStatus, ItemSource
from catalog.models import DataElement, DataItem, Dataset, Department, utcnow
from catalog.rules import DatasetDraft, ResolvedItem, check_dataset
from catalog.search import CatalogSearch, backend_for
from catalog.service import bump_generation, reindex, resolve_element

from catalog.federation.client import DeniedRemote, NotFoundRemote, RemoteCatalog, RemoteError, Unsupported
from catalog.federation.mapping import PackageProblem, RemotePackage, org_code, parse_modified, read_package, solr_time
from catalog.federation.models import HarvestDepartment, HarvestItem, HarvestRecord, HarvestRun, HarvestSource

log = logging.getLogger(__name__)

MODES = ("search", "search_desc", "list")
# Each run starts this far before the watermark: a remote transaction that stamped metadata_modified before a later
# one but committed after it (so it was not yet visible) is still read. Re-read packages cost a comparison only.
OVERLAP = dt.timedelta(minutes=10)
MAX_PROBLEMS = 500
MAX_PAGES = 100_000
LIST_PAGE = 1000
DEPARTMENT_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
DATASET_CODE = re.compile(r"^([A-Z][A-Z0-9]{1,15})-([0-9]{5})$")


class Clash(PackageProblem):
    """The package would land on something this source does not own (a local dataset or department)."""


@dataclass
class SourceConfig:
    id: int
    name: str
    title: str
    url: str
    prefix: str
    api_key: str | None
    api_key_env: str | None
    mode: str
    page_size: int
    timeout: float
    retries: int
    backoff: float
    watermark: dt.datetime | None

    @classmethod
    def of(cls, s: HarvestSource) -> SourceConfig:
        return cls(s.id, s.name, s.title, s.url, s.prefix, s.api_key, s.api_key_env, s.mode or "auto",
                   s.page_size, s.timeout, s.retries, s.backoff, s.watermark)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name in ("created", "updated", "withdrawn", "unchanged", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)

    def skip(self, remote_id: str | None, kind: str, message: str, code: str | None = None,
             name: str | None = None) -> None:
        self.skipped += 1
        self.problems.append({"remote_id": remote_id, "name": name, "code": code, "kind": kind, "message": message})


ClientFactory = Callable[[SourceConfig, str | None], Any]


def default_client(config: SourceConfig, apikey: str | None, sleep: Callable[[float], None] = time.sleep
                   ) -> RemoteCatalog:
    return RemoteCatalog(config.url, apikey, timeout=config.timeout, retries=config.retries,
                         backoff=config.backoff, sleep=sleep)


class Harvester:
    """Runs harvests against one local database. `client_factory` and `sleep` are seams for tests."""

    def __init__(self, db: Database, search: CatalogSearch | None = None, *,
                 client_factory: ClientFactory | None = None, sleep: Callable[[float], None] = time.sleep,
                 environ: dict[str, str] | None = None):
        self.db = db
        self.search = search or CatalogSearch(backend_for(db.dialect))
        self.sleep = sleep
        self.client_factory = client_factory or (lambda config, key: default_client(config, key, sleep))
        self.environ = os.environ if environ is None else environ

    def sources(self, names: Iterable[str] | None = None) -> list[str]:
        with self.db.session() as session:
            query = select(HarvestSource.name).order_by(HarvestSource.name)
            if names is None:
                query = query.where(HarvestSource.active.is_(True))
            else:
                query = query.where(HarvestSource.name.in_(list(names)))
            return list(session.execute(query).scalars())

    def run_all(self, names: Iterable[str] | None = None, *, full: bool = False) -> list[HarvestRun]:
        """Harvest each source in turn; one source's failure is recorded on its run and the next goes on."""
        return [self.run(name, full=full) for name in self.sources(names)]

    def run(self, name: str, *, full: bool = False) -> HarvestRun:
        with self.db.session() as session:
            source = session.execute(select(HarvestSource).where(HarvestSource.name == name)).scalar_one_or_none()
            if source is None:
                raise LookupError(f"采集来源 {name} 不存在")
            config = SourceConfig.of(source)
            if full:
                config.watermark = None
            run = HarvestRun(source_id=source.id, status="running", since=config.watermark, errors=[], problems=[])
            session.add(run)
            session.flush()
            run_id = run.id
        job = _Run(self, config, full=full)
        try:
            job.harvest()
        except RemoteError as exc:
            job.errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded on the run; the other sources still run
            log.exception("harvest of %s failed", config.name)
            job.errors.append(f"内部错误（本页未写入）：{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        finally:
            job.close()
        return self._finish(run_id, job)

    def _finish(self, run_id: int, job: _Run) -> HarvestRun:
        with self.db.session() as session:
            run = session.get(HarvestRun, run_id)
            counts = job.counts
            run.finished_at = utcnow()
            run.mode = job.mode
            run.pages = job.pages
            run.created, run.updated, run.withdrawn = counts.created, counts.updated, counts.withdrawn
            run.unchanged, run.skipped = counts.unchanged, counts.skipped
            run.retried = job.retried
            run.errors = list(job.errors)
            run.problems = counts.problems[:MAX_PROBLEMS]
            if not job.errors:
                run.status = "ok"
            else:
                run.status = "partial" if job.pages or counts.withdrawn else "failed"
            session.flush()
            return run


class _Run:
    """One source's harvest: the listing, the page transactions, the withdrawals."""

    def __init__(self, harvester: Harvester, config: SourceConfig, full: bool = False):
        self.h = harvester
        self.full = full  # re-map every package (not trusting metadata_modified); unchanged ones are still not written
        self.db = harvester.db
        self.search = harvester.search
        self.config = config
        self.rows = max(1, min(config.page_size, 1000))
        self.counts = Counts()
        self.errors: list[str] = []
        self.pages = 0
        self.mode: str | None = None
        self.client: Any = None
        self.seen: dict[str, dt.datetime | None] = {}  # remote id → metadata_modified applied in this run
        self.names_done: set[str] = set()  # package ids and names (lower case) handled in this run
        self._names: list[str] | None = None
        self._element_ids: dict[tuple[str, str | None], int | None] = {}

    @property
    def retried(self) -> int:
        return getattr(self.client, "retried", 0) if self.client is not None else 0

    def close(self) -> None:
        if self.client is not None and hasattr(self.client, "close"):
            self.client.close()

    # ------------------------------------------------------------ the listing
    def harvest(self) -> None:
        apikey = self.config.api_key
        if self.config.api_key_env:
            apikey = self.h.environ.get(self.config.api_key_env)
            if not apikey:
                raise RemoteError("配置", f"环境变量 {self.config.api_key_env} 未设置（该来源的 API 令牌）", 1, False)
        self.client = self.h.client_factory(self.config, apikey)
        modes = MODES if self.config.mode == "auto" else (self.config.mode,)
        for index, mode in enumerate(modes):
            self.mode = mode
            pages_before = self.pages
            try:
                getattr(self, f"_harvest_{mode}")()
                break
            except Unsupported as exc:
                if self.pages > pages_before or index == len(modes) - 1:
                    raise
                log.info("harvest %s: %s unsupported (%s), trying the next listing", self.config.name, mode, exc)
        self._reconcile()

    def _search(self, data: dict[str, Any]) -> dict[str, Any]:
        return self.client.call("package_search", {"q": "*:*", "rows": self.rows, "include_private": True, **data},
                                check=_is_search_result)

    def _since(self) -> dt.datetime | None:
        return self.config.watermark - OVERLAP if self.config.watermark is not None else None

    def _harvest_search(self) -> None:
        cursor = self._since()
        start = 0
        for _ in range(MAX_PAGES):
            since = solr_time(cursor) if cursor is not None else "*"
            result = self._search({"fq": f"metadata_modified:[{since} TO *]", "sort": "metadata_modified asc",
                                   "start": start})
            packages = result["results"]
            if not packages:
                return
            times = [t for t in (parse_modified(p.get("metadata_modified")) for p in packages) if t is not None]
            newest = max(times) if times else None
            self._apply_page(packages, watermark=newest)
            if len(packages) < self.rows:
                return
            if newest is None or (cursor is not None and newest <= cursor):
                start += self.rows  # a page of equal timestamps: step over it
            else:
                cursor, start = newest, 0
        raise RemoteError("package_search", "分页次数超过上限，停止本次采集", 1, False)

    def _harvest_search_desc(self) -> None:
        since = self._since()
        start = 0
        first_count: int | None = None
        stable = True
        newest: dt.datetime | None = None
        for _ in range(MAX_PAGES):
            result = self._search({"sort": "metadata_modified desc", "start": start})
            count = result.get("count")
            if first_count is None:
                first_count = count
            elif count != first_count:
                stable = False
            packages = result["results"]
            fresh = []
            for p in packages:
                modified = parse_modified(p.get("metadata_modified"))
                if modified is not None and newest is None:
                    newest = modified
                if since is None or modified is None or modified >= since:
                    fresh.append(p)
            if fresh:
                self._apply_page(fresh)
            if len(fresh) < len(packages) or len(packages) < self.rows:
                break
            start += self.rows
        else:
            raise RemoteError("package_search", "分页次数超过上限，停止本次采集", 1, False)
        if stable and newest is not None:
            with self.db.session() as session:
                source = session.get(HarvestSource, self.config.id)
                if source.watermark is None or newest > source.watermark:
                    source.watermark = newest

    def _harvest_list(self) -> None:
        names = self._remote_names()
        for chunk in _chunks(names, self.rows):
            packages = []
            for name in chunk:  # the whole page is read before anything of it is written
                try:
                    packages.append(self.client.call("package_show", {"id": name}, check=_is_package))
                except (NotFoundRemote, DeniedRemote):
                    self.names_done.add(name.lower())
                    continue  # gone between the list and the show: the withdrawal pass sees to it
            if packages:
                self._apply_page(packages)

    def _remote_names(self) -> list[str]:
        if self._names is not None:
            return self._names
        names: list[str] = []
        seen: set[str] = set()
        offset = 0
        for _ in range(MAX_PAGES):
            page = self.client.call("package_list", {"limit": LIST_PAGE, "offset": offset, "include_private": True},
                                    check=lambda r: isinstance(r, list) and all(isinstance(n, str) for n in r))
            new = [n for n in page if n not in seen]
            names.extend(new)
            seen.update(new)
            if len(page) < LIST_PAGE or not new:  # a remote that ignores limit/offset answers everything at once
                break
            offset += LIST_PAGE
        self._names = names
        return names

    # ------------------------------------------------------------ the full list: new packages missed, deletions
    def _reconcile(self) -> None:
        """Compare the remote's full package list with what this source has brought in.

        A listed package this catalog has never seen (and this run did not handle) is fetched: the change listing
        can miss a package whose metadata_modified is older than the watermark by more than the overlap (a late
        commit). A package brought in before that is no longer listed is checked with package_show and withdrawn
        only when the remote confirms it is gone."""
        names = self._remote_names()
        listed = {n.lower() for n in names}
        with self.db.session() as session:
            rows = session.execute(
                select(HarvestRecord.remote_id, HarvestRecord.remote_name, HarvestRecord.remote_state)
                .where(HarvestRecord.source_id == self.config.id)).all()
            previous = session.execute(select(HarvestRun.problems).where(
                HarvestRun.source_id == self.config.id, HarvestRun.finished_at.is_not(None))
                .order_by(HarvestRun.id.desc()).limit(1)).scalar_one_or_none() or []
        known = {v.lower() for rid, rname, _ in rows for v in (rid, rname)} | self.names_done
        # A package the previous run skipped and that did not change since is still skipped: reported again as
        # such, not fetched again every run (it is, when it changes, or with --full).
        carried = []
        for problem in [] if self.full else previous:
            keys = {str(problem[k]).lower() for k in ("remote_id", "name") if isinstance(problem, dict) and problem.get(k)}
            if keys & listed and not keys & known:
                carried.append({**problem, "carried": True})
                known |= keys
        self.counts.skipped += len(carried)
        self.counts.problems.extend(carried)
        unseen = [n for n in names if n.lower() not in known]
        for chunk in _chunks(unseen, self.rows):
            packages = []
            for name in chunk:
                try:
                    packages.append(self.client.call("package_show", {"id": name}, check=_is_package))
                except (NotFoundRemote, DeniedRemote):
                    continue
            if packages:
                self._apply_page(packages)
        missing = [rid for rid, rname, state in rows
                   if state == "active" and rname.lower() not in listed and rid.lower() not in listed]
        gone: list[tuple[str, str]] = []
        still_there: list[dict[str, Any]] = []
        for remote_id in missing:
            try:
                package = self.client.call("package_show", {"id": remote_id}, check=_is_package)
            except NotFoundRemote:
                gone.append((remote_id, "来源目录中已不存在"))
                continue
            except DeniedRemote:
                gone.append((remote_id, "来源目录不再向本平台提供"))
                continue
            # `state: deleted` is withdrawn like any deleted package; an active one the listing missed (a private
            # package in CKAN's package_list) is kept and refreshed.
            still_there.append(package)
        for chunk in _chunks(still_there, self.rows):
            self._apply_page(chunk)
        for chunk in _chunks(gone, self.rows):
            self._withdraw_page(chunk)

    def _withdraw_page(self, entries: list[tuple[str, str]]) -> None:
        counts = Counts()
        with self.db.session() as session:
            source = session.get(HarvestSource, self.config.id)
            changed = False
            for remote_id, why in entries:
                record = self._record(session, remote_id)
                if record is not None:
                    changed |= self._withdraw(session, source, record, why, None, counts)
            if changed:
                bump_generation(session)
        self.counts.add(counts)

    # ------------------------------------------------------------ one page, one transaction
    def _apply_page(self, packages: list[Any], watermark: dt.datetime | None = None) -> None:
        counts = Counts()
        applied: dict[str, dt.datetime | None] = {}
        done: set[str] = set()
        with self.db.session() as session:
            source = session.get(HarvestSource, self.config.id)
            changed = False
            for raw in packages:
                remote_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
                modified = parse_modified(raw.get("metadata_modified")) if isinstance(raw, dict) else None
                if isinstance(raw, dict):
                    done.update(str(raw[k]).lower() for k in ("id", "name") if raw.get(k))
                if remote_id in self.seen and self.seen[remote_id] == modified and modified is not None:
                    continue  # the same package twice in one run (pages overlap on equal timestamps)
                changed |= self._apply_package(session, source, raw, counts)
                if remote_id:
                    applied[remote_id] = modified
            if changed:
                bump_generation(session)
            if watermark is not None and (source.watermark is None or watermark > source.watermark):
                source.watermark = watermark
        # committed: only now does the page count
        self.pages += 1
        self.seen.update(applied)
        self.names_done.update(done)
        self.counts.add(counts)

    def _record(self, session: Session, remote_id: str) -> HarvestRecord | None:
        return session.execute(select(HarvestRecord).where(HarvestRecord.source_id == self.config.id,
                                                           HarvestRecord.remote_id == remote_id)).scalar_one_or_none()

    def _apply_package(self, session: Session, source: HarvestSource, raw: Any, counts: Counts) -> bool:
        """Create, update, withdraw or skip one package. True when the catalog changed."""
        remote_id = raw.get("id") if isinstance(raw, dict) else None
        remote_name = raw.get("name") if isinstance(raw, dict) else None
        try:
            pkg = read_package(raw, source.title)
        except PackageProblem as exc:
            counts.skip(remote_id if isinstance(remote_id, str) else None, "invalid", str(exc),
                        name=remote_name if isinstance(remote_name, str) else None)
            return False
        record = self._record(session, pkg.remote_id)
        if pkg.harvested_from is not None and record is None:
            counts.skip(pkg.remote_id, "harvested_elsewhere",
                        f"该资源本身是从其他目录采集的副本（{pkg.harvested_from}），只采集原始目录的资源", name=pkg.remote_name)
            return False
        if pkg.state == "deleted":
            if record is None:
                return False
            why = "来源目录已撤销该资源" + (f"：{pkg.remote_reason}" if pkg.remote_reason else "")
            record.remote_modified = pkg.modified
            return self._withdraw(session, source, record, why, pkg, counts)
        if (not self.full and record is not None and pkg.modified is not None and record.remote_modified == pkg.modified
                and record.remote_state == "active" and not record.withdrawn_by_harvest):
            counts.unchanged += 1
            return False
        try:
            return self._upsert(session, source, record, pkg, counts)
        except PackageProblem as exc:
            kind = "clash" if isinstance(exc, Clash) else getattr(exc, "kind", "refused")
            code = record.dataset.code if record is not None else None
            counts.skip(pkg.remote_id, kind, str(exc), code, name=pkg.remote_name)
            return False

    def _upsert(self, session: Session, source: HarvestSource, record: HarvestRecord | None, pkg: RemotePackage,
                counts: Counts) -> bool:
        dataset = record.dataset if record is not None else None
        if dataset is not None and dataset.status == DatasetStatus.withdrawn and not record.withdrawn_by_harvest:
            record.remote_modified = pkg.modified
            raise _problem("local_withdrawn", f"本地已撤销资源 {dataset.code}（{dataset.withdrawn_reason or ''}），不再同步")
        # Everything that may refuse the package is decided before anything is written.
        elements = self._elements(session, pkg)
        mirror, department_code, department_name = self._plan_department(session, source, pkg)
        code = dataset.code if dataset is not None else self._new_code(session, source, department_code, pkg)
        related = [c for c in (source.prefix + r for r in pkg.related) if DATASET_CODE.match(c) and c != code]
        fields = pkg.fields
        resolved = [ResolvedItem(i, it.code, it.name, elements[i], ItemSource.reference, it.length, it.is_key)
                    for i, it in enumerate(pkg.items)]
        draft = DatasetDraft(code, department_code, fields["category"], _v(fields.get("base_library")),
                             fields["share_type"], fields.get("share_condition"), fields["open_type"],
                             fields.get("open_condition"), fields["security_grade"])
        violations = check_dataset(draft, resolved, new=False)
        if violations:
            rules = "；".join(f"{v.rule}（{v.message}）" for v in violations[:5])
            raise _problem("rules", f"不符合本地目录规则：{rules}")
        fingerprint = _fingerprint(department_code, fields, related, pkg, elements)
        now = utcnow()
        if record is not None:
            record.remote_name = pkg.remote_name
            record.remote_org, record.remote_org_title = pkg.org_key or None, pkg.org_title
            record.remote_modified = pkg.modified
            record.remote_state = "active"
            record.harvested_at = now
            if record.fingerprint == fingerprint and not record.withdrawn_by_harvest:
                counts.unchanged += 1
                return False
        department = self._mirror_department(session, source, pkg, mirror, department_code, department_name)
        if dataset is None:
            dataset = Dataset(code=code, department_id=department.id, department=department, created_by_id=None,
                              status=DatasetStatus.published, keywords=[], related=[], summary="")
            session.add(dataset)
        for name, value in fields.items():
            setattr(dataset, name, _v(value) if name == "base_library" else value)
        dataset.related = related
        if dataset.department_id != department.id:
            dataset.department_id = department.id  # moved between remote organizations: the code stays (as a transfer)
            dataset.department = department
        if dataset.status == DatasetStatus.withdrawn:  # withdrawn here because the remote had deleted it: back again
            dataset.status = DatasetStatus.published
            dataset.withdrawn_at = None
            dataset.withdrawn_reason = None
        session.flush()
        self._set_items(session, source, dataset, pkg, elements)
        if record is None:
            session.add(HarvestRecord(dataset_id=dataset.id, source_id=source.id, remote_id=pkg.remote_id,
                                      remote_name=pkg.remote_name, remote_org=pkg.org_key or None,
                                      remote_org_title=pkg.org_title, remote_modified=pkg.modified,
                                      remote_state="active", fingerprint=fingerprint, withdrawn_by_harvest=False,
                                      first_harvested_at=now, harvested_at=now))
            counts.created += 1
        else:
            record.fingerprint = fingerprint
            record.withdrawn_by_harvest = False
            counts.updated += 1
        session.flush()
        reindex(session, self.search, dataset)
        return True

    def _withdraw(self, session: Session, source: HarvestSource, record: HarvestRecord, why: str,
                  pkg: RemotePackage | None, counts: Counts) -> bool:
        record.remote_state = "deleted"
        record.harvested_at = utcnow()
        dataset = record.dataset
        if dataset.status == DatasetStatus.withdrawn:
            return False  # already withdrawn (here, by a local user, or by an earlier run)
        dataset.status = DatasetStatus.withdrawn
        dataset.withdrawn_at = utcnow()
        dataset.withdrawn_reason = f"{why}（来源目录「{source.title}」{source.name}，远端资源 {record.remote_id}）"
        record.withdrawn_by_harvest = True
        session.flush()
        self.search.backend.delete(session, dataset.id)
        counts.withdrawn += 1
        return True

    # ------------------------------------------------------------ departments, codes, items
    def _plan_department(self, session: Session, source: HarvestSource, pkg: RemotePackage
                         ) -> tuple[HarvestDepartment | None, str, str | None]:
        """The mirror department of the package's organization, or the code and name a new one will get (Clash if
        there can be none)."""
        mirror = session.execute(select(HarvestDepartment).where(HarvestDepartment.source_id == source.id,
                                                                 HarvestDepartment.remote_org == (pkg.org_key or ""))
                                 ).scalar_one_or_none()
        if mirror is not None:
            return mirror, mirror.department.code, None
        code = self._mirror_code(session, source, pkg.org_key or "")
        return None, code, self._mirror_name(session, source, pkg, code)

    def _mirror_department(self, session: Session, source: HarvestSource, pkg: RemotePackage,
                           mirror: HarvestDepartment | None, code: str, name: str | None) -> Department:
        if mirror is not None:
            if pkg.org_title and mirror.remote_title != pkg.org_title:  # renamed at the source
                mirror.remote_title = pkg.org_title
                if not _name_taken(session, _cut(pkg.org_title, 128), mirror.department_id):
                    mirror.department.name = _cut(pkg.org_title, 128)
                    session.flush()
                    for other in session.execute(select(Dataset).where(
                            Dataset.department_id == mirror.department_id,
                            Dataset.status == DatasetStatus.published)).unique().scalars():
                        reindex(session, self.search, other)  # the department's name is in the search text
            return mirror.department
        department = Department(code=code, name=name, short_name=_cut(pkg.org_description, 64))
        session.add(department)
        session.flush()
        session.add(HarvestDepartment(department_id=department.id, source_id=source.id, remote_org=pkg.org_key or "",
                                      remote_title=pkg.org_title))
        return department

    def _mirror_code(self, session: Session, source: HarvestSource, key: str) -> str:
        natural = org_code(key)
        if natural and DEPARTMENT_CODE.match(source.prefix + natural):
            code = source.prefix + natural
            taken = session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
            if taken is not None:
                raise Clash(f"镜像部门代码 {code} 已被本地部门「{taken.name}」使用；来源组织 {key} 的资源未采集")
            return code
        base = (source.prefix + (re.sub(r"[^A-Z0-9]", "", key.upper()) or "ORG"))[:16]
        for n in range(100):
            code = base if n == 0 else f"{base[:14]}{n:02d}"
            if not session.execute(select(Department.id).where(Department.code == code)).first():
                return code
        raise Clash(f"无法为来源组织 {key} 分配镜像部门代码（{base}…均已被使用）")

    def _mirror_name(self, session: Session, source: HarvestSource, pkg: RemotePackage, code: str) -> str:
        title = pkg.org_title or (f"{source.title} {pkg.org_key}" if pkg.org_key else f"{source.title}（未注明部门）")
        for candidate in (title, f"{title}（{source.title}）", f"{title}（{source.title} {code}）"):
            candidate = _cut(candidate, 128)
            if not _name_taken(session, candidate, None):
                return candidate
        raise Clash(f"镜像部门名称「{title}」已被本地部门使用")

    def _new_code(self, session: Session, source: HarvestSource, department_code: str, pkg: RemotePackage) -> str:
        if pkg.remote_code and DATASET_CODE.match(source.prefix + pkg.remote_code):
            code = source.prefix + pkg.remote_code
            holder = session.execute(select(Dataset).where(Dataset.code == code)).unique().scalar_one_or_none()
            if holder is not None:
                owner = session.get(HarvestRecord, holder.id)
                whose = f"来源目录 {owner.source.name} 的采集资源" if owner is not None else "本地资源"
                raise Clash(f"资源代码 {code} 已被{whose}「{holder.name}」({holder.department.name}) 使用，未覆盖")
            return code
        codes = session.execute(select(Dataset.code).where(Dataset.code.like(f"{department_code}-%"))).scalars()
        numbers = [int(m.group(2)) for c in codes if (m := DATASET_CODE.match(c)) and m.group(1) == department_code]
        return f"{department_code}-{max(numbers, default=0) + 1:05d}"

    def _elements(self, session: Session, pkg: RemotePackage) -> list[Any]:
        out = []
        missing = []
        for item in pkg.items:
            key = (item.element, item.element_version)
            if key not in self._element_ids:  # the standards do not change during a run
                found = resolve_element(session, item.element, item.element_version)
                self._element_ids[key] = found.id if found is not None else None
            element_id = self._element_ids[key]
            element = session.get(DataElement, element_id) if element_id is not None else None
            if element is None:
                missing.append(f"{item.element}" + (f" 版本 {item.element_version}" if item.element_version else ""))
            out.append(element)
        if missing:
            raise _problem("unknown_element", "数据元不在本地标准库（一标准）：" + "、".join(missing))
        return out

    def _set_items(self, session: Session, source: HarvestSource, dataset: Dataset, pkg: RemotePackage,
                   elements: list[Any]) -> None:
        session.execute(delete(HarvestItem).where(HarvestItem.dataset_id == dataset.id))
        existing = {i.code: i for i in dataset.items}
        wanted = {it.code for it in pkg.items}
        for code, old in list(existing.items()):
            if code not in wanted:
                dataset.items.remove(old)
        session.flush()
        rows: list[tuple[DataItem, Any]] = []
        for position, (it, element) in enumerate(zip(pkg.items, elements)):
            row = existing.get(it.code) or DataItem(code=it.code)
            if row.id is None:
                dataset.items.append(row)
            row.position = position
            row.name = it.name
            row.data_element_id = element.id
            row.data_element = element
            row.data_type = element.data_type
            row.length = it.length if it.length is not None else element.max_length
            row.required = it.required
            row.is_key = it.is_key
            row.sensitivity = element.sensitivity
            row.security_grade = element.security_grade
            # 一数一源 across the federation: a copy here, whose authoritative item lives at the source.
            row.source = ItemSource.reference
            row.reference_item_id = None
            rows.append((row, it))
        session.flush()
        for row, it in rows:
            session.add(HarvestItem(item_id=row.id, dataset_id=dataset.id, source_id=source.id,
                                    element_identifier=row.data_element.identifier, remote_source=it.remote_source,
                                    remote_dataset=_cut(it.remote_dataset, 128), remote_item=it.code))


def _problem(kind: str, message: str) -> PackageProblem:
    exc = PackageProblem(message)
    exc.kind = kind  # type: ignore[attr-defined]
    return exc


def _v(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _cut(value: str | None, limit: int) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def _name_taken(session: Session, name: str, except_id: int | None) -> bool:
    found = session.execute(select(Department.id).where(Department.name == name)).scalar_one_or_none()
    return found is not None and found != except_id


def _fingerprint(department: str, fields: dict[str, Any], related: list[str], pkg: RemotePackage,
                 elements: list[Any]) -> str:
    doc = {
        "department": department,
        "fields": {k: (v.isoformat() if isinstance(v, dt.date) else _v(v)) for k, v in sorted(fields.items())},
        "related": related,
        "items": [[it.code, it.name, el.identifier, el.version, it.length, it.required, it.is_key, it.remote_source,
                   it.remote_dataset] for it, el in zip(pkg.items, elements)],
    }
    return hashlib.sha256(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _is_search_result(result: Any) -> bool:
    return isinstance(result, dict) and isinstance(result.get("results"), list)


def _is_package(result: Any) -> bool:
    return isinstance(result, dict) and bool(result.get("id") or result.get("name"))
