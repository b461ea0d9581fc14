"""`opendata harvest add | run | list` (registered in catalog/cli.py).

Exit codes: 0 done; 1 a harvest run ended with errors (each source's run is still recorded and printed);
2 bad arguments, an unknown source, or a database that cannot be opened or is not migrated.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlparse

import typer

harvest_app = typer.Typer(help="联邦目录采集（市县一体化）：登记远端 CKAN 兼容目录并增量采集", no_args_is_help=True)

# Same options as the other `opendata` commands (defined here: importing catalog.cli at import time would be circular).
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="数据目录（SQLite 文件与存储），默认 ./var")]
DbUrl = Annotated[Optional[str], typer.Option("--database-url", help="数据库 URL，默认取 DATABASE_URL 或数据目录中的 SQLite")]

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PREFIX = re.compile(r"^[A-Z][A-Z0-9]{0,5}$")
STATUS_LABELS = {"ok": "成功", "partial": "部分完成", "failed": "失败", "running": "进行中"}


def _open(data_dir: Path | None, database_url: str | None):  # noqa: ANN202
    from catalog.cli import _database, _fail, _settings
    from catalog.migrate import current_revision

    settings = _settings(data_dir, database_url)
    db = _database(settings)  # exit 2 when it cannot be opened
    if current_revision(db.engine) is None:
        db.dispose()
        _fail("数据库尚未初始化，请先运行 `opendata init`", 2)
    return db


def _session(db):  # noqa: ANN001, ANN202
    """A unit of work; a schema without the harvest tables is a clear exit 2."""
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError, ProgrammingError

    from catalog.cli import _fail

    @contextmanager
    def scope():  # noqa: ANN202
        try:
            with db.session() as session:
                yield session
        except (OperationalError, ProgrammingError) as exc:
            _fail(f"无法读取采集来源（数据库是否已升级到最新版本？请运行 `opendata init`）：{str(exc).splitlines()[0]}", 2)

    return scope()


def default_name(url: str) -> str:
    parsed = urlparse(url)
    host = (parsed.hostname or "remote") + (f"-{parsed.port}" if parsed.port else "")
    return re.sub(r"[^a-z0-9]+", "-", host.lower()).strip("-")[:64] or "remote"


@harvest_app.command("add")
def add_command(
    url: Annotated[str, typer.Argument(help="远端目录地址，如 https://data.xc.example.gov.cn（CKAN Action API 所在站点）")],
    name: Annotated[Optional[str], typer.Option("--name", help="来源名称（小写字母、数字、- _），默认取主机名")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="显示名称，如「示范县」，默认同名称")] = None,
    department_prefix: Annotated[Optional[str], typer.Option(
        "--department-prefix", help="镜像部门代码前缀（大写字母开头，至多 6 位），如 XC：县公安局 GAJ → 本地部门 XCGAJ")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="远端签发给本平台的 API 令牌（存入数据库）")] = None,
    api_key_env: Annotated[Optional[str], typer.Option("--api-key-env", help="改为每次运行时从该环境变量读取令牌")] = None,
    mode: Annotated[str, typer.Option(help="列举方式：auto、search（CKAN fq 时间范围）、search_desc、list")] = "auto",
    page_size: Annotated[int, typer.Option(help="每页资源数（每页一个事务）", min=1, max=1000)] = 100,
    timeout: Annotated[float, typer.Option(help="每次请求的超时秒数", min=0.01, max=600)] = 30.0,
    retries: Annotated[int, typer.Option(help="暂时性错误的重试次数", min=0, max=10)] = 3,
    backoff: Annotated[float, typer.Option(help="首次重试前等待秒数（此后每次加倍）", min=0, max=60)] = 1.0,
    data_dir: DataDir = None, database_url: DbUrl = None,
) -> None:
    """登记一个远端 CKAN 兼容目录（如县级平台）为采集来源。"""
    from sqlalchemy import select

    from catalog.cli import _fail
    from catalog.federation.harvester import MODES
    from catalog.federation.models import HarvestSource

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        _fail(f"地址应为 http(s)://… 形式：{url}", 2)
    name = name or default_name(url)
    if not NAME.match(name):
        _fail(f"来源名称「{name}」不合法：只能包含小写字母、数字、- 和 _，且以字母或数字开头", 2)
    prefix = department_prefix.upper() if department_prefix else re.sub(r"[^A-Z0-9]", "", name.upper())[:6]
    if not PREFIX.match(prefix):
        _fail(f"无法由名称「{name}」得出镜像部门代码前缀，请用 --department-prefix 指定（大写字母开头，至多 6 位字母数字）"
              if not department_prefix else f"部门代码前缀「{department_prefix}」不合法：大写字母开头，至多 6 位字母数字", 2)
    if mode != "auto" and mode not in MODES:
        _fail(f"--mode 只能是 auto、{'、'.join(MODES)}", 2)
    if api_key and api_key_env:
        _fail("--api-key 与 --api-key-env 只能二选一", 2)
    db = _open(data_dir, database_url)
    try:
        with _session(db) as session:
            if session.execute(select(HarvestSource.id).where(HarvestSource.name == name)).first():
                _fail(f"采集来源 {name} 已存在", 2)
            for other in session.execute(select(HarvestSource)).scalars():
                if other.prefix.startswith(prefix) or prefix.startswith(other.prefix):
                    _fail(f"部门代码前缀 {prefix} 与来源 {other.name} 的前缀 {other.prefix} 冲突（镜像部门代码将无法区分）", 2)
            session.add(HarvestSource(name=name, title=(title or name).strip()[:128], url=url.rstrip("/"),
                                      prefix=prefix, api_key=api_key, api_key_env=api_key_env, mode=mode,
                                      page_size=page_size, timeout=timeout, retries=retries, backoff=backoff,
                                      active=True))
    finally:
        db.dispose()
    typer.echo(f"已登记采集来源 {name}：{url.rstrip('/')}（镜像部门代码前缀 {prefix}）")
    typer.echo(f"运行采集：opendata harvest run {name}")


def _describe(run) -> list[str]:  # noqa: ANN001
    lines = [f"{run.source.name}: {STATUS_LABELS.get(run.status, run.status)} · 新增 {run.created} · 更新 {run.updated} · "
             f"撤销 {run.withdrawn} · 未变 {run.unchanged} · 跳过 {run.skipped} · 重试 {run.retried}"
             f"（{run.mode or '-'}，{run.pages} 页）"]
    for error in run.errors or []:
        lines.append(f"  ✗ {error}")
    for problem in (run.problems or [])[:20]:
        what = problem.get("code") or problem.get("remote_id") or "?"
        lines.append(f"  - 跳过 {what} [{problem.get('kind')}] {problem.get('message')}")
    if len(run.problems or []) > 20:
        lines.append(f"  …另有 {len(run.problems) - 20} 个被跳过的资源（见采集记录）")
    return lines


@harvest_app.command("run")
def run_command(
    name: Annotated[Optional[str], typer.Argument(help="来源名称")] = None,
    all_sources: Annotated[bool, typer.Option("--all", help="采集所有启用的来源")] = False,
    full: Annotated[bool, typer.Option("--full", help="忽略时间水位与 metadata_modified，重新读取并比对全部资源（未变的不写入）")] = False,
    data_dir: DataDir = None, database_url: DbUrl = None,
) -> None:
    """增量采集：拉取上次以来变化的资源，撤销远端已删除的资源；每个来源的结果都记入采集记录。"""
    from catalog.cli import _fail
    from catalog.federation.harvester import Harvester

    if bool(name) == all_sources:
        _fail("请指定一个来源名称，或使用 --all", 2)
    from sqlalchemy.exc import OperationalError, ProgrammingError

    db = _open(data_dir, database_url)
    try:
        harvester = Harvester(db)
        try:
            names = harvester.sources(None if all_sources else [name])
        except (OperationalError, ProgrammingError) as exc:
            _fail(f"无法读取采集来源（数据库是否已升级到最新版本？请运行 `opendata init`）：{str(exc).splitlines()[0]}", 2)
        if not names:
            _fail("没有启用的采集来源，请先运行 `opendata harvest add URL`" if all_sources else f"采集来源 {name} 不存在", 2)
        runs = harvester.run_all(names, full=full)
    finally:
        db.dispose()
    for run in runs:
        for line in _describe(run):
            typer.echo(line)
    if any(run.status != "ok" for run in runs):
        raise typer.Exit(1)


@harvest_app.command("list")
def list_command(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """列出采集来源、其最近一次采集结果与已采集的资源数。"""
    from sqlalchemy import func, select

    from catalog.enums import DatasetStatus
    from catalog.federation.models import HarvestRecord, HarvestRun, HarvestSource
    from catalog.models import Dataset

    db = _open(data_dir, database_url)
    try:
        with _session(db) as session:
            sources = list(session.execute(select(HarvestSource).order_by(HarvestSource.name)).scalars())
            counts = dict(session.execute(
                select(HarvestRecord.source_id, func.count()).join(Dataset, Dataset.id == HarvestRecord.dataset_id)
                .where(Dataset.status == DatasetStatus.published).group_by(HarvestRecord.source_id)).all())
            latest = {}
            for source in sources:
                latest[source.id] = session.execute(
                    select(HarvestRun).where(HarvestRun.source_id == source.id).order_by(HarvestRun.id.desc()).limit(1)
                ).scalar_one_or_none()
    finally:
        db.dispose()
    if not sources:
        typer.echo("尚无采集来源。登记：opendata harvest add URL --name NAME --department-prefix PREFIX")
        return
    for source in sources:
        key = "令牌：已设置" if source.api_key else (f"令牌：${source.api_key_env}" if source.api_key_env else "匿名")
        state = "" if source.active else "（已停用）"
        typer.echo(f"{source.name}{state}  {source.title}  {source.url}  前缀 {source.prefix}  {key}  "
                   f"方式 {source.mode}  已采集资源 {counts.get(source.id, 0)}  "
                   f"水位 {source.watermark.isoformat() if source.watermark else '-'}")
        run = latest[source.id]
        if run is None:
            typer.echo("  尚未采集")
        else:
            when = f"{run.started_at:%Y-%m-%d %H:%M:%S}"
            typer.echo(f"  最近一次（{when} UTC）" + _describe(run)[0].split(": ", 1)[1])
            for error in run.errors or []:
                typer.echo(f"    ✗ {error}")
