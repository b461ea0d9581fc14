"""归集 (collection): a department's delivery becomes an immutable, versioned Parquet snapshot.

Input (CSV in UTF-8 / UTF-8 with BOM / GBK / GB18030, XLSX, JSON lines, Parquet, or rows pulled from a SQL source)
is read as text in batches, its columns mapped to the dataset's items by item code or name, every value coerced to
its standard's type (a value that does not fit names its row and column), re-cut into fixed-size row groups and
streamed into Parquet — so a file of any length is never held in memory whole, and the same rows always give the
same bytes (re-delivering identical content publishes nothing). Publishing is atomic: see catalog/storage.py.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.auth import Principal
from catalog.enums import CollectionStatus, DatasetStatus, DataType, UpdateCycle
from catalog.errors import Conflict, DomainError
from catalog.models import CollectionRun, DataItem, Dataset, DatasetVersion, utcnow
from catalog.permissions import check_update_dataset
from catalog.storage import Storage

ROW_GROUP_ROWS = 131_072  # fixed, so identical rows give identical bytes whatever the input's batching
READ_BLOCK_BYTES = 8 << 20
FORMATS = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet"}
ARROW_TYPES = {DataType.string: pa.string(), DataType.integer: pa.int64(), DataType.decimal: pa.float64(),
               DataType.date: pa.date32(), DataType.datetime: pa.timestamp("s"), DataType.boolean: pa.bool_()}
# How old the last good version may get before the resource is 已过期 (不定期 never expires).
MAX_AGE = {UpdateCycle.realtime: dt.timedelta(days=1), UpdateCycle.daily: dt.timedelta(days=2),
           UpdateCycle.weekly: dt.timedelta(days=8), UpdateCycle.monthly: dt.timedelta(days=32),
           UpdateCycle.quarterly: dt.timedelta(days=93), UpdateCycle.half_yearly: dt.timedelta(days=185),
           UpdateCycle.yearly: dt.timedelta(days=366), UpdateCycle.irregular: None}


class CollectionRejected(DomainError):
    """The delivery cannot be published; nothing was published. The message says what and where."""

    status_code = 422
    error = "collection_rejected"


class DeliveryTooLarge(CollectionRejected):
    status_code = 413
    error = "delivery_too_large"


@dataclass
class Delivery:
    """Where the rows come from: a file on disk (upload or CLI) or a SQL source."""

    kind: str  # upload | cli | sql
    name: str  # file name, or the SQL source with its password hidden
    path: Path | None = None
    file_format: str | None = None
    sql_url: str | None = None
    sql_query: str | None = None


@dataclass
class CollectionResult:
    status: str  # published | unchanged
    run: CollectionRun
    version: DatasetVersion


# ---------------------------------------------------------------- reading: every source as batches of text columns
def detect_format(filename: str) -> str:
    fmt = FORMATS.get(Path(filename).suffix.lower())
    if fmt is None:
        raise CollectionRejected(f"不支持的文件类型「{Path(filename).suffix or filename}」；支持 CSV、XLSX、JSON Lines、Parquet")
    return fmt


def _detect_encoding(path: Path) -> str:
    head = path.open("rb").read(1 << 20)
    if not head.strip():
        raise CollectionRejected("文件为空")
    if head.startswith(codecs.BOM_UTF8):
        return "utf8"  # pyarrow skips the BOM itself
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            decoder.decode(head, final=False)  # a character cut at the 1 MiB boundary is not an error
            return "utf8" if encoding == "utf-8" else encoding
        except UnicodeDecodeError:
            continue
    raise CollectionRejected("无法识别文件编码：既不是 UTF-8，也不是 GBK/GB18030")


def _csv_batches(path: Path) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    encoding = _detect_encoding(path)
    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    text = first.decode("utf-8-sig" if encoding == "utf8" else encoding, errors="replace")
    headers = next(csv.reader([text]), [])
    headers = [h.strip() for h in headers]
    if not any(headers):
        raise CollectionRejected("文件为空：第一行应为表头")
    try:
        reader = pacsv.open_csv(
            str(path),
            read_options=pacsv.ReadOptions(block_size=READ_BLOCK_BYTES, encoding=encoding, skip_rows=1,
                                           column_names=[f"c{i}" for i in range(len(headers))]),
            convert_options=pacsv.ConvertOptions(column_types={f"c{i}": pa.string() for i in range(len(headers))},
                                                 null_values=[""], strings_can_be_null=True,
                                                 quoted_strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise CollectionRejected(f"CSV 无法解析：{_arrow_message(exc)}") from exc

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise CollectionRejected(f"CSV 无法解析（编码 {encoding}）：{_arrow_message(exc)}") from exc

    return headers, batches()


def _arrow_message(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # spreadsheets store codes such as 110105 as floats
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return text if text != "" else None


def _rows_to_batch(rows: list[list[str | None]], width: int) -> pa.RecordBatch:
    columns = [pa.array([r[i] if i < len(r) else None for r in rows], type=pa.string()) for i in range(width)]
    return pa.RecordBatch.from_arrays(columns, names=[f"c{i}" for i in range(width)])


def _batched(records: Iterator[list[str | None]], width: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
    while chunk := list(itertools.islice(records, batch_rows)):
        yield _rows_to_batch(chunk, width)


def _xlsx_batches(path: Path, batch_rows: int = 50_000) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken file
        raise CollectionRejected(f"XLSX 无法打开：{exc}") from exc
    rows = workbook.worksheets[0].iter_rows(values_only=True)
    header_row = next(rows, None)
    if not header_row or not any(v is not None for v in header_row):
        raise CollectionRejected("文件为空：第一行应为表头")
    headers = [(_text(v) or "").strip() for v in header_row]

    def records() -> Iterator[list[str | None]]:
        for row in rows:
            if row is not None and any(v is not None for v in row):
                yield [_text(v) for v in row[: len(headers)]]
        workbook.close()

    return headers, _batched(records(), len(headers), batch_rows)


def _jsonl_batches(path: Path, batch_rows: int = 50_000) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    encoding = _detect_encoding(path)
    fh = io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig" if encoding == "utf8" else encoding)
    lines = (line for line in fh if line.strip())
    first = next(lines, None)
    if first is None:
        raise CollectionRejected("文件为空")

    def parse(line: str, number: int) -> dict:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CollectionRejected(f"第 {number} 条记录不是合法的 JSON：{exc.msg}") from exc
        if not isinstance(obj, dict):
            raise CollectionRejected(f"第 {number} 条记录应为 JSON 对象（每行一个对象）")
        return obj

    first_obj = parse(first, 1)
    headers = [str(k).strip() for k in first_obj]

    def records() -> Iterator[list[str | None]]:
        objects = itertools.chain([first_obj], (parse(line, n) for n, line in enumerate(lines, 2)))
        for number, record in enumerate(objects, 1):
            extra = [k for k in record if k not in first_obj]
            if extra:
                raise CollectionRejected(f"第 {number} 条记录含有首条记录没有的字段：{'、'.join(extra)}")
            yield [_text(record.get(h)) for h in first_obj]
        fh.close()

    return headers, _batched(records(), len(headers), batch_rows)


def _parquet_batches(path: Path) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    try:
        pf = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise CollectionRejected(f"Parquet 无法读取：{_arrow_message(exc)}") from exc
    headers = [name.strip() for name in pf.schema_arrow.names]

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in pf.iter_batches(batch_size=65_536):
            yield pa.RecordBatch.from_arrays([_as_text(col) for col in batch.columns],
                                             names=[f"c{i}" for i in range(len(headers))])

    return headers, batches()


def _as_text(col: pa.Array) -> pa.Array:
    if pa.types.is_string(col.type):
        return col
    if pa.types.is_floating(col.type):
        # 110105.0 → "110105": integral floats are codes or counts that passed through a float column.
        as_int = pc.cast(col, pa.int64(), safe=False)
        integral = pc.equal(pc.cast(as_int, pa.float64()), col)
        return pc.if_else(integral, pc.cast(as_int, pa.string()), pc.cast(col, pa.string()))
    if pa.types.is_timestamp(col.type):
        return pc.strftime(col, format="%Y-%m-%d %H:%M:%S")
    return pc.cast(col, pa.string())


def _sql_batches(url: str, query: str, batch_rows: int = 50_000) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(url)
        conn = engine.connect()
        result = conn.execution_options(stream_results=True).execute(text(query))
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        # The driver's message may quote the URL; never echo a password back.
        raise CollectionRejected(f"无法从数据源读取：{type(exc).__name__}: {_without_secrets(str(exc), url)}") from exc
    headers = [str(k).strip() for k in result.keys()]

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            while rows := result.fetchmany(batch_rows):
                yield _rows_to_batch([[_text(v) for v in row] for row in rows], len(headers))
        except SQLAlchemyError as exc:
            raise CollectionRejected(f"读取数据源时出错：{_without_secrets(str(exc), url)}") from exc
        finally:
            conn.close()
            engine.dispose()

    return headers, batches()


def _without_secrets(message: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001
        password = None
    message = message.splitlines()[0][:300]
    return message.replace(password, "***") if password else message


def describe_sql_source(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception as exc:  # noqa: BLE001
        raise CollectionRejected("数据源 URL 格式不正确（应为 SQLAlchemy URL，如 postgresql://user:***@host/db）") from exc


def open_delivery(delivery: Delivery) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    if delivery.kind == "sql":
        return _sql_batches(delivery.sql_url or "", delivery.sql_query or "")
    assert delivery.path is not None
    fmt = delivery.file_format or detect_format(delivery.name)
    if delivery.path.stat().st_size == 0:
        raise CollectionRejected("文件为空")
    return {"csv": _csv_batches, "xlsx": _xlsx_batches, "jsonl": _jsonl_batches,
            "parquet": _parquet_batches}[fmt](delivery.path)


# ---------------------------------------------------------------- mapping and coercion
def map_columns(items: list[DataItem], headers: list[str]) -> list[int]:
    """For each item (in dataset order), the index of the column that carries it — by item code or name."""
    by_key: dict[str, DataItem] = {}
    for item in items:
        by_key[item.code.lower()] = item
        by_key[item.name] = item
    column_of: dict[str, int] = {}
    extra: list[str] = []
    for index, header in enumerate(headers):
        item = by_key.get(header) or by_key.get(header.lower())
        if item is None:
            extra.append(header or f"(第 {index + 1} 列无表头)")
        elif item.code in column_of:
            raise CollectionRejected(f"数据项「{item.name}」({item.code}) 对应了多列：第 {column_of[item.code] + 1} 列和第 "
                                     f"{index + 1} 列「{header}」")
        else:
            column_of[item.code] = index
    missing = [f"{i.name}({i.code})" for i in items if i.code not in column_of]
    problems = []
    if missing:
        problems.append("缺少列：" + "、".join(missing))
    if extra:
        problems.append("多余的列（不是本资源的数据项）：" + "、".join(extra))
    if problems:
        raise CollectionRejected("；".join(problems) + "。列名应为数据项代码或名称", missing=missing, extra=extra)
    return [column_of[i.code] for i in items]


_PATTERNS = {
    DataType.integer: r"^\s*[+-]?\d+\s*$",
    DataType.decimal: r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$",
}
_TRUE = {"1", "true", "t", "y", "yes", "是"}
_FALSE = {"0", "false", "f", "n", "no", "否"}


def coerce(column: pa.Array, data_type: DataType) -> tuple[pa.Array, int | None]:
    """The column in the standard's type, and the index of the first value that does not fit (None if all fit)."""
    if data_type == DataType.string:
        return column, None
    present = pc.is_valid(column)
    if data_type in _PATTERNS:
        ok = pc.match_substring_regex(column, _PATTERNS[data_type])
        bad = _first_bad(ok, present)
        if bad is not None:
            return column, bad
        return pc.cast(pc.utf8_trim_whitespace(column), ARROW_TYPES[data_type]), None
    if data_type == DataType.boolean:
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(column))
        is_true = pc.is_in(lowered, value_set=pa.array(sorted(_TRUE)))
        is_false = pc.is_in(lowered, value_set=pa.array(sorted(_FALSE)))
        bad = _first_bad(pc.or_(is_true, is_false), present)
        return (column, bad) if bad is not None else (pc.if_else(present, is_true, None), None)
    trimmed = pc.utf8_trim_whitespace(column)
    if data_type == DataType.date:
        # 2024-03-01, 2024/03/01, 20240301, and a spreadsheet's "2024-03-01 00:00:00"
        normal = pc.replace_substring_regex(trimmed, r"^(\d{4})[-/]?(\d{1,2})[-/]?(\d{1,2})(?:[ T]00:00(?::00)?)?$",
                                            r"\1-\2-\3")
        parsed = pc.strptime(normal, format="%Y-%m-%d", unit="s", error_is_null=True)
        bad = _first_bad(_same_calendar_fields(normal, parsed), present)
        return (column, bad) if bad is not None else (pc.cast(parsed, pa.date32()), None)
    normal = pc.replace_substring_regex(trimmed, r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})[ T](\d{1,2}:\d{2}:\d{2})(?:\.\d+)?$",
                                        r"\1-\2-\3 \4")
    normal = pc.replace_substring_regex(normal, r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$", r"\1-\2-\3 00:00:00")
    parsed = pc.strptime(normal, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    bad = _first_bad(_same_calendar_fields(normal, parsed), present)
    return (column, bad) if bad is not None else (parsed, None)


_FIELDS = r"^(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?: (?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2}))?$"


def _same_calendar_fields(text: pa.Array, parsed: pa.Array) -> pa.Array:
    """True where the parsed time has exactly the written fields: Arrow's strptime rolls 2023-02-30 over to
    2023-03-02 instead of refusing it."""
    written = pc.extract_regex(text, _FIELDS)
    ok = pc.is_valid(parsed)
    for name, part in (("year", pc.year), ("month", pc.month), ("day", pc.day), ("hour", pc.hour),
                       ("minute", pc.minute), ("second", pc.second)):
        field = pc.struct_field(written, name)
        value = pc.cast(pc.if_else(pc.equal(field, ""), "0", field), pa.int64())
        ok = pc.and_(ok, pc.equal(value, part(parsed)))
    return ok


def _first_bad(ok: pa.Array, present: pa.Array) -> int | None:
    failing = pc.and_(present, pc.invert(pc.fill_null(ok, False)))
    if not pc.any(failing).as_py():
        return None
    return pc.index(failing, True).as_py()


TYPE_NAMES = {DataType.integer: "整数", DataType.decimal: "数值", DataType.date: "日期", DataType.datetime: "日期时间",
              DataType.boolean: "布尔值（是/否）"}


def typed_batches(items: list[DataItem], headers: list[str], batches: Iterator[pa.RecordBatch],
                  record_label: Callable[[int], str]) -> Iterator[pa.RecordBatch]:
    columns = map_columns(items, headers)
    schema = target_schema(items)
    offset = 0
    for batch in batches:
        arrays = []
        for item, index in zip(items, columns):
            raw = batch.column(index)
            typed, bad = coerce(raw, item.data_type)
            if bad is not None:
                value = raw[bad].as_py()
                raise CollectionRejected(
                    f"{record_label(offset + bad + 1)}，列「{headers[index]}」(数据项 {item.code}) 的值「{str(value)[:50]}」"
                    f"不能转换为{TYPE_NAMES[item.data_type]}",
                    row=offset + bad + 1, column=headers[index])
            arrays.append(typed)
        offset += batch.num_rows
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def target_schema(items: list[DataItem]) -> pa.Schema:
    return pa.schema([pa.field(i.code, ARROW_TYPES[i.data_type], nullable=True,
                               metadata={"name": i.name, "element": i.data_element.identifier})
                      for i in items])


def _fixed_row_groups(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        while rows >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(pending, schema=schema)
            yield table.slice(0, ROW_GROUP_ROWS).combine_chunks()
            rest = table.slice(ROW_GROUP_ROWS)
            pending = rest.to_batches()
            rows = rest.num_rows
    if rows:
        yield pa.Table.from_batches(pending, schema=schema).combine_chunks()


# ---------------------------------------------------------------- publishing
def _write_snapshot(storage: Storage, temp: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch],
                    on_progress: Callable[[int], None] | None) -> int:
    rows = 0
    with storage.open(temp, "wb") as out:
        writer = pq.ParquetWriter(out, schema, compression="zstd", write_statistics=True)
        try:
            for table in _fixed_row_groups(batches, schema):
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                rows += table.num_rows
                if on_progress:
                    on_progress(rows)
        finally:
            writer.close()
    return rows


def _checksum(storage: Storage, path: str) -> str:
    digest = hashlib.sha256()
    with storage.open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_deliver(principal: Principal | None, dataset: Dataset) -> Principal:
    """归集 is done by the provider department's publishers (or the steward), like any change to the dataset."""
    return check_update_dataset(principal, dataset)


def deliver(session: Session, storage: Storage, principal: Principal | None, dataset: Dataset, delivery: Delivery,
            on_progress: Callable[[int], None] | None = None, max_bytes: int | None = None) -> CollectionResult:
    """Collect one delivery into a new version. Raises CollectionRejected (nothing published) on bad input.

    The caller commits; a refused delivery should be recorded with `record_failure` in its own transaction.
    """
    p = check_deliver(principal, dataset)
    if dataset.status != DatasetStatus.published:
        raise Conflict(f"资源 {dataset.code} 已撤销，不能归集")
    if max_bytes is not None and delivery.path is not None and delivery.path.stat().st_size > max_bytes:
        raise DeliveryTooLarge(f"文件大小 {delivery.path.stat().st_size:,} 字节超过上限 {max_bytes:,} 字节")
    items = list(dataset.items)
    started = utcnow()
    headers, raw = open_delivery(delivery)

    def label(n: int) -> str:
        return f"第 {n} 条记录（文件第 {n + 1} 行）" if (delivery.file_format or "") == "csv" else f"第 {n} 条记录"

    schema = target_schema(items)
    batches = typed_batches(items, headers, raw, label)
    temp = storage.temp_path(dataset.code)
    try:
        rows = _write_snapshot(storage, temp, schema, batches, on_progress)
        if rows == 0:
            raise CollectionRejected("文件没有数据行（只有表头）")
        checksum = _checksum(storage, temp)
        latest = latest_version(session, dataset.id)
        if latest is not None and latest.checksum == checksum:
            storage.delete(temp)
            run = _record(session, dataset, delivery, p, "unchanged", rows, latest, started)
            return CollectionResult("unchanged", run, latest)
        number = (latest.version if latest else 0) + 1
        final = storage.final_path(dataset.code, number, checksum)
        storage.move(temp, final)
    except BaseException:
        storage.delete(temp)
        raise
    version = DatasetVersion(dataset_id=dataset.id, version=number, path=final, row_count=rows,
                             byte_size=storage.size(final), checksum=checksum,
                             schema_json={"fields": [{"name": f.name, "type": str(f.type),
                                                      "item_name": f.metadata[b"name"].decode()}
                                                     for f in schema]},
                             delivered_by_id=p.user_id)
    try:
        session.add(version)
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        storage.delete(final)
        raise Conflict(f"资源 {dataset.code} 正在被另一次归集发布版本 {number}，请稍后重试") from exc
    dataset.latest_version = number
    dataset.row_count = rows
    run = _record(session, dataset, delivery, p, "published", rows, version, started)
    refresh_collection_status(session, [dataset])
    return CollectionResult("published", run, version)


def _record(session: Session, dataset: Dataset, delivery: Delivery, principal: Principal | None, status: str,
            rows: int | None, version: DatasetVersion | None, started: dt.datetime,
            error: str | None = None) -> CollectionRun:
    run = CollectionRun(dataset_id=dataset.id, status=status, source_kind=delivery.kind, source_name=delivery.name,
                        file_format=delivery.file_format or ("sql" if delivery.kind == "sql" else None),
                        row_count=rows, version_id=version.id if version else None, error=error,
                        delivered_by_id=principal.user_id if principal else None, started_at=started,
                        finished_at=utcnow())
    session.add(run)
    session.flush()
    return run


def record_failure(session: Session, dataset: Dataset, delivery: Delivery, principal: Principal | None,
                   error: str) -> CollectionRun:
    run = _record(session, dataset, delivery, principal, "failed", None, None, utcnow(), error)
    refresh_collection_status(session, [dataset])
    return run


def deliver_and_check(session: Session, storage: Storage, principal: Principal | None, dataset: Dataset,
                      delivery: Delivery, max_bytes: int | None = None) -> CollectionResult:
    """A delivery as the API takes it: a refusal is recorded as a failed run and raised again; a new version is
    committed, then checked for quality in its own transaction (a published version stays published)."""
    dataset_id = dataset.id
    try:
        result = deliver(session, storage, principal, dataset, delivery, max_bytes=max_bytes)
    except CollectionRejected as exc:
        session.rollback()
        record_failure(session, session.get(Dataset, dataset_id), delivery, principal, exc.message)
        session.commit()
        raise
    session.commit()
    if result.status == "published":
        from quality.service import run_quality  # quality imports this module

        run_quality(session, storage, dataset, result.version)
        session.commit()
    return result


def latest_version(session: Session, dataset_id: int) -> DatasetVersion | None:
    return session.execute(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
        .order_by(DatasetVersion.version.desc()).limit(1)
    ).scalar_one_or_none()


# ---------------------------------------------------------------- 归集状态 and 归集率
def derive_status(dataset: Dataset, last_good_at: dt.datetime | None, last_run_failed: bool,
                  now: dt.datetime) -> CollectionStatus:
    if last_run_failed:
        return CollectionStatus.failed
    if last_good_at is None:
        return CollectionStatus.not_collected
    max_age = MAX_AGE[UpdateCycle(dataset.update_cycle)]
    if max_age is not None and now - last_good_at > max_age:
        return CollectionStatus.expired
    return CollectionStatus.collected


def refresh_collection_status(session: Session, datasets: list[Dataset] | None = None,
                              now: dt.datetime | None = None) -> int:
    """Recompute 归集状态 (it moves with time: 已过期); returns how many changed. Bumps the search generation."""
    from catalog.service import bump_generation

    now = now or utcnow()
    if datasets is None:
        datasets = list(session.execute(select(Dataset).where(Dataset.status == DatasetStatus.published))
                        .unique().scalars())
    if not datasets:
        return 0
    ids = [d.id for d in datasets]
    good = dict(session.execute(
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.collected_at))
        .where(DatasetVersion.dataset_id.in_(ids)).group_by(DatasetVersion.dataset_id)
    ).all())
    last_runs = {}
    for dataset_id, status in session.execute(
        select(CollectionRun.dataset_id, CollectionRun.status).where(CollectionRun.dataset_id.in_(ids))
        .order_by(CollectionRun.dataset_id, CollectionRun.id)
    ).all():
        last_runs[dataset_id] = status
    changed = 0
    for dataset in datasets:
        last_good = good.get(dataset.id)
        if last_good is not None and last_good.tzinfo is None:
            last_good = last_good.replace(tzinfo=dt.timezone.utc)
        status = derive_status(dataset, last_good, last_runs.get(dataset.id) == "failed", now)
        if dataset.collection_status != status:
            dataset.collection_status = status
            changed += 1
    if changed:
        bump_generation(session)
    session.flush()
    return changed
