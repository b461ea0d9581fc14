"""Collection (归集) benchmark (not a test): stream a large CSV into a versioned Parquet snapshot.

Builds a catalog with one dataset of five typed items (string, string, integer, date, decimal), writes an N-row
CSV (default 10,000,000), then in separate child processes (so each peak RSS is its own):
  * collect  — our path: `catalog.collection.deliver` (encoding detection, column mapping, type coercion with
               row-precise errors, fixed row groups, zstd Parquet, checksum, atomic publish);
  * baseline — pyarrow.csv.read_csv of the whole file into memory, then pyarrow.parquet.write_table.
Prints rows/s and peak RSS for both and their ratios, then one JSON line with every figure.

    python bench/collect.py                 # 10M rows
    python bench/collect.py --rows 1000000
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_catalog(url: str) -> str:
    from catalog.auth import Principal
    from catalog.db import Database
    from catalog.migrate import upgrade
    from catalog.models import DataElement, Department, User
    from catalog.schemas import DatasetCreate
    from catalog.search import CatalogSearch, backend_for
    from catalog.service import create_dataset

    db = Database(url)
    upgrade(db.engine)
    with db.session() as s:
        dept = Department(code="BENCH", name="基准测试部门")
        s.add(dept)
        s.flush()
        user = User(username="bench", display_name="基准", department_id=dept.id, roles=["steward"])
        s.add(user)
        for ident, name, dtype in [("BE01", "编码", "string"), ("BE02", "名称", "string"), ("BE03", "数量", "integer"),
                                   ("BE04", "日期", "date"), ("BE05", "金额", "decimal")]:
            s.add(DataElement(identifier=ident, version="1.0", name=name, data_type=dtype, sensitivity="一般",
                              security_grade="L1", checks=[]))
        s.flush()
        body = DatasetCreate(name="基准数据集", category="部门库", share_type="无条件共享", open_type="禁止开放",
                             update_cycle="每日", security_grade="L1", department="BENCH", items=[
                                 {"code": "bm", "name": "编码", "element": "BE01", "is_key": True},
                                 {"code": "mc", "name": "名称", "element": "BE02"},
                                 {"code": "sl", "name": "数量", "element": "BE03"},
                                 {"code": "rq", "name": "日期", "element": "BE04"},
                                 {"code": "je", "name": "金额", "element": "BE05"}])
        code = create_dataset(s, CatalogSearch(backend_for(db.dialect)), Principal.of(user), body).code
    db.dispose()
    return code


def make_csv(path: Path, rows: int, chunk: int = 1_000_000) -> None:
    rng = np.random.default_rng(3)
    with pacsv.CSVWriter(str(path), pa.schema([("bm", pa.string()), ("mc", pa.string()), ("sl", pa.int64()),
                                               ("rq", pa.string()), ("je", pa.float64())])) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.arange(start, start + n)
            days = np.datetime64("2015-01-01") + rng.integers(0, 3650, n).astype("timedelta64[D]")
            writer.write_table(pa.table({
                "bm": pa.array(np.char.add("ID", ids.astype(str))),
                "mc": pa.array(np.char.add("站点", (ids % 9973).astype(str))),
                "sl": pa.array(rng.integers(0, 10_000, n)),
                "rq": pa.array(days.astype(str)),
                "je": pa.array(np.round(rng.random(n) * 1e4, 2)),
            }))


def run_collect(url: str, code: str, csv_path: str, storage_root: str, out: mp.Queue) -> None:
    from sqlalchemy import select

    from catalog import collection
    from catalog.auth import Principal
    from catalog.db import Database
    from catalog.models import User
    from catalog.service import find_dataset
    from catalog.storage import Storage

    db = Database(url)
    t = time.perf_counter()
    with db.session() as s:
        user = s.execute(select(User)).scalar_one()
        result = collection.deliver(s, Storage(storage_root), Principal.of(user), find_dataset(s, code),
                                    collection.Delivery(kind="cli", name="bench.csv", path=Path(csv_path),
                                                        file_format="csv"))
        rows, size = result.version.row_count, result.version.byte_size
    out.put({"seconds": time.perf_counter() - t, "rows": rows, "parquet_bytes": size,
             "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def run_baseline(csv_path: str, target: str, out: mp.Queue) -> None:
    import pyarrow.parquet as pq

    t = time.perf_counter()
    table = pacsv.read_csv(csv_path)
    pq.write_table(table, target, compression="zstd")
    out.put({"seconds": time.perf_counter() - t, "rows": table.num_rows,
             "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def in_child(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="odh-bench-collect-") as tmp:
        url = f"sqlite:///{tmp}/catalog.db"
        code = make_catalog(url)
        csv_path = Path(tmp) / "bench.csv"
        t = time.perf_counter()
        make_csv(csv_path, args.rows)
        csv_mb = csv_path.stat().st_size / 2**20
        print(f"CSV: {args.rows:,} rows, {csv_mb:,.0f} MiB (written in {time.perf_counter() - t:.1f} s)", flush=True)
        ours = in_child(run_collect, url, code, str(csv_path), f"{tmp}/storage")
        base = in_child(run_baseline, str(csv_path), f"{tmp}/baseline.parquet")
    figures = {
        "rows": args.rows, "csv_mib": round(csv_mb),
        "collect_s": round(ours["seconds"], 1), "collect_rows_per_s": round(ours["rows"] / ours["seconds"]),
        "collect_peak_rss_mb": round(ours["peak_rss_mb"]), "parquet_mib": round(ours["parquet_bytes"] / 2**20),
        "baseline_s": round(base["seconds"], 1), "baseline_peak_rss_mb": round(base["peak_rss_mb"]),
    }
    figures["time_ratio_collect_over_baseline"] = round(ours["seconds"] / base["seconds"], 2)
    figures["rss_ratio_baseline_over_collect"] = round(base["peak_rss_mb"] / ours["peak_rss_mb"], 1)
    print(f"collect : {figures['collect_s']} s, {figures['collect_rows_per_s']:,} rows/s, peak RSS "
          f"{figures['collect_peak_rss_mb']} MB, Parquet {figures['parquet_mib']} MiB")
    print(f"baseline: {figures['baseline_s']} s (read whole + write), peak RSS {figures['baseline_peak_rss_mb']} MB")
    print(f"collect takes {figures['time_ratio_collect_over_baseline']}x the baseline's time and "
          f"1/{figures['rss_ratio_baseline_over_collect']} of its memory")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
