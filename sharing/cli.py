"""`opendata audit …`: checks on the hash-chained audit log (registered in catalog/cli.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

audit_app = typer.Typer(help="审计日志")

# The same options as the other `opendata` commands (catalog/cli.py), defined here so that importing this module
# from catalog/cli.py cannot run into a circular import.
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="数据目录（SQLite 文件与存储），默认 ./var")]
DbUrl = Annotated[Optional[str], typer.Option("--database-url", help="数据库 URL，默认取 DATABASE_URL 或数据目录中的 SQLite")]

KIND_LABELS = {
    "edited": "内容被修改",
    "missing": "记录缺失",
    "inserted": "记录被插入",
    "reordered": "顺序被调换",
    "truncated": "尾部被删除",
    "head_mismatch": "链头不符",
}


@audit_app.command("verify")
def verify_command(data_dir: DataDir = None, database_url: DbUrl = None) -> None:
    """校验审计日志的哈希链：发现被修改、删除、插入或调换顺序的记录，并指出位置。"""
    from sqlalchemy.exc import SQLAlchemyError

    from catalog.cli import _database, _fail, _settings
    from catalog.migrate import current_revision
    from sharing.audit import MAX_PROBLEMS, verify

    settings = _settings(data_dir, database_url)
    db = _database(settings)  # exit 2 if it cannot be opened
    try:
        if current_revision(db.engine) is None:
            _fail("数据库尚未初始化，请先运行 `opendata init`", 2)
        try:
            with db.session() as session:
                result = verify(session)
        except SQLAlchemyError as exc:
            _fail(f"无法读取审计日志（数据库是否已升级到最新版本？请运行 `opendata init`）：{str(exc).splitlines()[0]}", 2)
    finally:
        db.dispose()
    if result.ok:
        typer.echo(f"审计链完整：共 {result.checked} 条")
        return
    more = f"（仅列出前 {MAX_PROBLEMS} 处）" if len(result.problems) >= MAX_PROBLEMS else ""
    typer.secho(f"审计链被破坏：发现 {len(result.problems)} 处问题{more}；已检查 {result.checked} 条，"
                f"链头为第 {result.head_seq} 条", fg=typer.colors.RED, err=True)
    for problem in result.problems:
        typer.echo(f"  [{KIND_LABELS.get(problem.kind, problem.kind)}] {problem.message}")
    raise typer.Exit(1)
