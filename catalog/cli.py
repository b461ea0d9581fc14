"""The `opendata` command line: init (migrate), seed, serve, demo."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="opendata-hub 公共数据目录与共享平台")

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="数据目录（SQLite 文件与存储），默认 ./var")]
DbUrl = Annotated[Optional[str], typer.Option("--database-url", help="数据库 URL，默认取 DATABASE_URL 或数据目录中的 SQLite")]


def _settings(data_dir: Path | None, database_url: str | None):
    from catalog.settings import Settings

    overrides: dict = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url:
        overrides["database_url"] = database_url
    return Settings(**overrides)


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"错误：{message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _database(settings):
    from sqlalchemy.exc import OperationalError

    from catalog.db import Database

    try:
        db = Database(settings.resolved_database_url())
        with db.engine.connect():
            pass
    except (OperationalError, ValueError) as exc:
        _fail(f"无法连接数据库 {settings.resolved_database_url()}: {str(exc).splitlines()[0]}", 2)
    return db


def _migrate(db) -> str:
    from catalog.migrate import current_revision, upgrade

    upgrade(db.engine)
    return current_revision(db.engine) or "?"


def _seed(db, settings):
    from catalog.search import CatalogSearch, backend_for
    from schemas.loader import StandardFileError
    from seeds.loader import SeedError, seed

    from catalog.storage import storage_for

    search = CatalogSearch(backend_for(db.dialect))
    try:
        with db.session() as session:
            return seed(session, search, storage=storage_for(settings.resolved_storage_root()))
    except (SeedError, StandardFileError) as exc:
        _fail(f"种子数据有误，未写入任何内容：{exc}", 3)


@app.command()
def init(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """创建或升级数据库结构（Alembic 迁移）。"""
    settings = _settings(data_dir, database_url)
    db = _database(settings)
    rev = _migrate(db)
    typer.echo(f"数据库已迁移到版本 {rev}: {db.engine.url.render_as_string(hide_password=True)}")


@app.command()
def seed(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """载入 seeds/ 中的演示部门、用户、数据元标准、资源与编目清单（可重复执行）。"""
    settings = _settings(data_dir, database_url)
    db = _database(settings)
    from catalog.migrate import current_revision

    if current_revision(db.engine) is None:
        _fail("数据库尚未初始化，请先运行 `opendata init`", 2)
    report = _seed(db, settings)
    typer.echo(f"数据元 {report.standards}；部门 {report.departments}；用户 {report.users}；"
               f"资源 新增 {report.datasets_created} / 已有 {report.datasets_existing}；编目清单 {report.inventory}；"
               f"演示归集 {len(report.deliveries)}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _serve(settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    if not _port_free(host, port):
        _fail(f"端口 {port} 已被占用，请用 --port 指定其他端口", 4)
    # Worker processes rebuild the app from the environment, so pass the settings through it.
    os.environ["ODH_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["DATABASE_URL"] = settings.database_url
    uvicorn.run("catalog.asgi:app", host=host, port=port, workers=workers, log_level="warning")


@app.command()
def serve(
    data_dir: DataDir = None, database_url: DbUrl = None,
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="工作进程数", min=1, max=64)] = 1,
) -> None:
    """启动 API 服务。"""
    settings = _settings(data_dir, database_url)
    db = _database(settings)
    from catalog.migrate import current_revision

    if current_revision(db.engine) is None:
        _fail("数据库尚未初始化，请先运行 `opendata init`（或直接 `opendata demo`）", 2)
    db.dispose()
    typer.echo(f"opendata-hub 已启动: http://{host}:{port}/")
    _serve(settings, host, port, workers)


@app.command()
def demo(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="端口", min=1, max=65535)] = 8000,
) -> None:
    """一条命令运行演示：初始化数据库、载入种子数据、为演示用户签发令牌并启动服务。"""
    from sqlalchemy import select

    from catalog.auth import issue_token
    from catalog.models import User

    settings = _settings(data_dir, None)
    if not _port_free(host, port):
        _fail(f"端口 {port} 已被占用，请用 --port 指定其他端口（并用 --data-dir 指定另一数据目录）", 4)
    db = _database(settings)
    _migrate(db)
    report = _seed(db, settings)
    base = f"http://{host}:{port}"
    lines = []
    with db.session() as session:
        for entry in report.demo_users:
            user = session.execute(select(User).where(User.username == entry["username"])).scalar_one()
            _, secret = issue_token(session, settings.secret_key, user, "demo", 30)
            lines.append((entry, secret))
    db.dispose()
    corrected = _write_corrected_deliveries(settings.data_dir)
    typer.echo("")
    typer.secho(f"opendata-hub 演示已就绪: {base}/", fg=typer.colors.GREEN, bold=True)
    typer.echo(f"数据目录: {settings.data_dir.resolve()}  数据库: {settings.resolved_database_url()}")
    typer.echo("演示用户（用户名 / 密码 / 部门 / 角色 / API 令牌）:")
    for entry, secret in lines:
        typer.echo(f"  {entry['username']:<16} {entry['password']:<26} {entry['department']:<6} "
                   f"{','.join(entry['roles']):<18} {secret}")
    steward_token = next(s for e, s in lines if "steward" in e["roles"])
    typer.echo("试一试:")
    # -G --data-urlencode: the server (like any HTTP/1.1 server) wants the Chinese query percent-encoded.
    typer.echo(f'  curl -s -G -H "Authorization: Bearer {steward_token}" "{base}/api/v1/datasets" '
               f'--data-urlencode "q=信用"')
    typer.echo(f'  curl -s -G "{base}/api/v1/datasets" --data-urlencode "q=空气"    # 匿名：开放目录')
    typer.echo(f'  curl -s -H "Authorization: Bearer {steward_token}" "{base}/api/v1/tickets?status=active"   # 问题数据工单')
    typer.echo(f'  curl -s -H "Authorization: Bearer {steward_token}" "{base}/api/v1/quality/report.csv" -o 质量报告.csv   # 大数据局质量报告')
    typer.echo(f"网页演示：浏览器打开 {base}/ ，按 README「在网页上走一遍」登录各角色点击完成；上传用的文件：")
    typer.echo(f"  {corrected['monitors']}  （含 3 行错误的灾害类型代码）")
    typer.echo(f"  {corrected['monitors-fixed']}  （修正后）")
    typer.echo("整改演示：交付修正后的数据，工单自动核验关闭、质量得分上升（另开一个终端）：")
    command = Path(sys.argv[0]) if Path(sys.argv[0]).name == "opendata" else "opendata"
    typer.echo(f"  {command} collect GAJ-00001 {corrected['GAJ-00001']} --user gaj_publisher --data-dir {settings.data_dir}")
    typer.echo("共享演示：新用户申请、提供方收窄同意、凭证按授权读取、审计可查（另开一个终端）：")
    typer.echo(f"  {command} walkthrough --base-url {base}")
    typer.echo(f"  {command} audit verify --data-dir {settings.data_dir}")
    typer.echo(f'  curl -s "{base}/open/v1/datasets/STHJ-00001/download?format=csv"   # 开放门户：匿名下载无条件开放数据')
    sys.stdout.flush()
    _serve(settings, host, port, 1)


@app.command()
def collect(
    dataset: Annotated[str, typer.Argument(help="资源代码，如 GAJ-00001")],
    file: Annotated[Path, typer.Argument(help="数据文件：CSV / XLSX / JSON Lines / Parquet", exists=False)],
    user: Annotated[str, typer.Option("--user", help="以哪个用户的身份归集（须为该资源所属部门的提供方或大数据局）")] = "steward",
    data_dir: DataDir = None, database_url: DbUrl = None,
) -> None:
    """把一个数据文件归集为资源的新版本（显示进度；内容未变则不产生新版本）。"""
    from sqlalchemy import select

    from catalog import collection
    from catalog.auth import Principal
    from catalog.errors import DomainError
    from catalog.models import User
    from catalog.service import find_dataset
    from catalog.storage import storage_for

    if not file.is_file():
        _fail(f"文件不存在：{file}", 2)
    settings = _settings(data_dir, database_url)
    db = _database(settings)
    storage = storage_for(settings.resolved_storage_root())
    try:
        fmt = collection.detect_format(file.name)
    except DomainError as exc:
        _fail(exc.message, 5)
    delivery = collection.Delivery(kind="cli", name=file.name, path=file.resolve(), file_format=fmt)
    size = file.stat().st_size
    with db.session() as session:
        account = session.execute(select(User).where(User.username == user)).scalar_one_or_none()
        if account is None:
            _fail(f"用户 {user} 不存在", 2)
        principal = Principal.of(account)
        try:
            dataset = find_dataset(session, dataset)
            collection.check_deliver(principal, dataset)
        except DomainError as exc:
            _fail(exc.message, 2)
    with db.session() as session:
        dataset_row = find_dataset(session, dataset.code)
        estimated_rows = _estimate_rows(file, size)
        with typer.progressbar(length=estimated_rows, label=f"归集 {dataset.code}", show_pos=True) as bar:
            shown = [0]

            def progress(rows: int) -> None:
                step = min(rows, estimated_rows) - shown[0]
                if step > 0:
                    bar.update(step)
                    shown[0] += step

            try:
                result = collection.deliver(session, storage, principal, dataset_row, delivery, on_progress=progress,
                                            max_bytes=settings.max_upload_bytes)
                bar.update(estimated_rows - shown[0])
            except DomainError as exc:
                session.rollback()
                if isinstance(exc, collection.CollectionRejected):
                    with db.session() as s2:
                        collection.record_failure(s2, find_dataset(s2, dataset.code), delivery, principal, exc.message)
                _fail(exc.message, 5)
        version = result.version
    if result.status == "published":
        from quality.service import run_quality

        with db.session() as session:
            run = run_quality(session, storage, find_dataset(session, dataset.code))
            _print_quality(run)
    word = "已发布新版本" if result.status == "published" else "内容与最新版本相同，未产生新版本"
    typer.echo(f"{word}：{dataset.code} v{version.version}，{version.row_count:,} 行，{version.byte_size:,} 字节，"
               f"sha256 {version.checksum[:16]}…")


quality_app = typer.Typer(help="质量检查（由数据元标准生成的规则）")
app.add_typer(quality_app, name="quality")


def _print_quality(run) -> None:  # noqa: ANN001
    scores = "，".join(f"{k} {v:g}" for k, v in run.scores.items() if v is not None)
    typer.echo(f"质量检查：{len(run.rule_results)} 条规则，{run.row_count:,} 行；得分 {scores}")
    for r in run.rule_results:
        if r.failing:
            typer.echo(f"  ✗ {r.rule_id:<32} {r.dimension} 不合格 {r.failing:,}/{r.evaluated:,}  例：{'、'.join(r.sample_keys[:3])}")


@quality_app.command("run")
def quality_run(
    dataset: Annotated[str, typer.Argument(help="资源代码")],
    executor: Annotated[str, typer.Option(help="fast（默认，向量化）或 gx（Great Expectations）")] = "fast",
    data_dir: DataDir = None, database_url: DbUrl = None,
) -> None:
    """对资源的最新版本重新运行质量检查。"""
    from catalog.errors import DomainError
    from catalog.service import find_dataset
    from catalog.storage import storage_for
    from quality.service import run_quality

    if executor not in ("fast", "gx"):
        _fail("--executor 只能是 fast 或 gx", 2)
    settings = _settings(data_dir, database_url)
    db = _database(settings)
    try:
        with db.session() as session:
            run = run_quality(session, storage_for(settings.resolved_storage_root()), find_dataset(session, dataset),
                              executor=executor)
            _print_quality(run)
    except DomainError as exc:
        _fail(exc.message, 2)


def _estimate_rows(file: Path, size: int) -> int:
    """Rows in the file, estimated from the first 1 MiB of a text file (for the progress bar only)."""
    with file.open("rb") as fh:
        head = fh.read(1 << 20)
    lines = head.count(b"\n") or 1
    return max(1, int(size / max(1, len(head)) * lines))


@app.command("storage-cleanup")
def storage_cleanup(
    grace_minutes: Annotated[int, typer.Option(help="只清理早于此分钟数的文件")] = 60,
    data_dir: DataDir = None, database_url: DbUrl = None,
) -> None:
    """清理存储中未被任何版本引用的文件（中断的发布留下的临时文件和孤儿文件）。"""
    from sqlalchemy import select

    from catalog.models import DatasetVersion
    from catalog.storage import storage_for

    settings = _settings(data_dir, database_url)
    db = _database(settings)
    with db.session() as session:
        referenced = set(session.execute(select(DatasetVersion.path)).scalars())
    removed = storage_for(settings.resolved_storage_root()).cleanup_orphans(referenced, grace_minutes * 60)
    typer.echo(f"已清理 {len(removed)} 个文件")


def _write_corrected_deliveries(data_dir: Path) -> dict[str, Path]:
    """The demo deliveries with their problems fixed, for the "deliver corrected data" step."""
    from seeds.deliveries import DELIVERIES, csv_bytes

    out_dir = data_dir / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for code, (filename, rows) in DELIVERIES.items():
        if rows(corrected=True) == rows():
            continue  # a delivery without deliberate problems has nothing to correct
        path = out_dir / filename.replace(".csv", "-修正.csv")
        path.write_bytes(csv_bytes(rows(corrected=True)))
        paths[code] = path
    from seeds.deliveries import monitors

    for key, corrected in (("monitors", False), ("monitors-fixed", True)):  # for the clicked story (README)
        paths[key] = out_dir / f"地质灾害监测员名单{'-修正' if corrected else ''}.csv"
        paths[key].write_bytes(csv_bytes(monitors(corrected=corrected)))
    return paths


@app.command()
def walkthrough(base_url: Annotated[str, typer.Option("--base-url", help="运行中的演示服务地址")] = "http://127.0.0.1:8000"
                ) -> None:
    """演示共享流程：新用户申请有条件共享资源，提供方收窄同意，大数据局审核，凭证只读到授权范围，审计可查。"""
    import httpx

    from sharing.walkthrough import WalkthroughError, run

    try:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            run(client, typer.echo)
    except httpx.HTTPError as exc:
        _fail(f"无法访问 {base_url}：{exc}（先运行 `make demo`）", 2)
    except WalkthroughError as exc:
        _fail(str(exc), 1)
    typer.echo("校验审计链：opendata audit verify --data-dir <演示数据目录>")


def _register_subcommands() -> None:
    from sharing.cli import audit_app
    from catalog.federation.cli import harvest_app

    app.add_typer(audit_app, name="audit")
    app.add_typer(harvest_app, name="harvest")


_register_subcommands()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
