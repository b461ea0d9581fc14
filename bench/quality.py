"""Data-quality benchmark (not a test): the generated rule suite of 人口基本信息 over 1M / 10M synthetic rows.

Builds the rules the product would run — `quality.suite.generate_rules` on the seeded dataset GAJ-00001 人口基本信息
(公民身份号码 as key, 姓名, 性别代码, 出生日期, 民族代码, 户籍地址, 行政区划代码, 户号, 与户主关系代码, 文化程度代码) — and a
synthetic population that passes every one of them (valid unique ID numbers with their MOD 11-2 check character,
gender and birth date consistent with the ID, codes from the standards' code lists). Rows then get exactly one error
each, of eight kinds that each break one rule (bad check character, duplicate key, missing name, unknown 民族 code,
unknown division code, birth date ≠ ID, gender ≠ ID, malformed 户号); by default (--errors per-check, the definition
in ../shared/notes/quality.md) each check fails on the given fraction of rows, disjointly; --errors per-row spreads
the fraction over the eight kinds instead. Duplicate-key rows come in pairs, so the failing rows are exactly the
injected ones.

Each snapshot is written to Parquet once; every measurement runs in its own spawned child process that reads it
(read time reported apart, never in rows/s), so each peak RSS (the child's VmHWM) is that measurement's own:
  * fast — our executor, `quality.executor.run_rules`, on the subset of rules GX can run (for the ratio), then on the
           full generated suite (the product's figure);
  * gx   — plain Great Expectations 1.x on pandas for the same subset (`quality.gx_executor.build_suite`, with our
           custom identifier expectation), result_format COMPLETE with the row key as `unexpected_index_column_names`,
           which is what a problem-data ticket needs. The Arrow → pandas conversion is timed apart and left out.
Both first validate 1,000 rows untimed, so one-time costs (lazy imports, the division table) are not counted;
times are the median of --repeat runs (default 3).
Per-rule failing counts of GX and of our executor are compared, and ours against the injected counts.
Prints a table, the goals (≥ 10× GX at 1% failing rows, ≥ 50× at 10%, 10M rows in < 10 s, peak RSS < 2 GB), then
one JSON line with every figure.

    python bench/quality.py                                   # 1M and 10M rows; GX at 1M only
    python bench/quality.py --rows 1000000 --error-rate 0.01
    python bench/quality.py --gx-max-rows 10000000            # GX at 10M too (slow and memory-hungry)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import re
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The repository root first: this file's own directory would otherwise make `import quality` find bench/quality.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if TYPE_CHECKING:
    from quality.suite import Rule

DATASET = "GAJ-00001"
KEY = "sfzhm"
WARM_UP_ROWS = 1_000

# Birthplace (ID address) codes in use in every birth year generated, as the ID check requires (check_clean confirms).
BIRTH_DIVISIONS = [110101, 110105, 110108, 330122, 330127]
BIRTH_FIRST, BIRTH_LAST = np.datetime64("1950-01-01"), np.datetime64("2010-12-31")
RESIDENCE_DIVISIONS = {"330102": "上城区", "330105": "拱墅区", "330106": "西湖区", "330108": "滨江区",
                       "330109": "萧山区", "330110": "余杭区", "330122": "桐庐县", "330127": "淳安县"}
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文辉力志宇浩然欣怡梓涵子轩一诺思雨俊晨")
STREETS = ["文三路", "天目山路", "延安路", "解放路", "庆春路", "莫干山路", "江南大道", "建设一路", "人民路", "新安江路"]
ETHNIC_CODES = [f"{i:02d}" for i in range(2, 57)]  # 01 汉族 is drawn separately, ~91% of rows
RELATION_CODES = ["01", "02", "10", "20", "30", "40", "50", "60", "70", "99"]
EDUCATION_CODES = ["10", "20", "30", "40", "60", "70", "80", "90"]

# Injected error kind → the one rule it breaks.
ERROR_KINDS = {
    "bad_check_char": "cn_resident_id:sfzhm",
    "duplicate_key": "unique:sfzhm",
    "missing_name": "not_null:xm",
    "unknown_ethnic_code": "in_set:mzdm",
    "unknown_division": "cn_division_code:hjdxzqhdm",
    "birth_date_mismatch": "id_birth_date:sfzhm+csrq",
    "gender_mismatch": "id_gender:sfzhm+xbdm",
    "malformed_household_no": "regex:hh",
}
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int32)
ID_CHARS = np.frombuffer(b"0123456789X", dtype=np.uint8)
WRONG_CHECK_CHAR = np.zeros(256, dtype=np.uint8)  # each check character → a different, still well-formed one
WRONG_CHECK_CHAR[ID_CHARS] = np.roll(ID_CHARS, -1)


# ---------------------------------------------------------------------------------------------------------------------
# Rules and data


def load_rules() -> list[Rule]:
    from catalog.db import Database
    from catalog.migrate import upgrade
    from catalog.search import CatalogSearch, backend_for
    from catalog.service import find_dataset
    from quality.suite import generate_rules
    from seeds.loader import seed

    with tempfile.TemporaryDirectory(prefix="odh-bench-quality-db-") as tmp:
        db = Database(f"sqlite:///{tmp}/catalog.db")
        upgrade(db.engine)
        with db.session() as s:
            seed(s, CatalogSearch(backend_for(db.dialect)))
        with db.session() as s:
            rules = generate_rules(find_dataset(s, DATASET))
        db.dispose()
    return rules


def fixed_width_strings(matrix: np.ndarray) -> pa.StringArray:
    """An (n, width) uint8 matrix of ASCII bytes → a string array, without a per-row Python loop."""
    n, width = matrix.shape
    if n * width >= 2**31:
        raise SystemExit("fixed_width_strings: more than 2 GiB of characters, beyond a pa.string() array")
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(width)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(np.ascontiguousarray(matrix))])


def fixed_width_matrix(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """The inverse of fixed_width_strings for a column with no nulls whose values all have `width` bytes."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    start = int(np.frombuffer(arr.buffers()[1], dtype=np.int32, count=arr.offset + 1)[arr.offset])
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    return data[start:start + len(arr) * width].reshape(len(arr), width).copy()


def resident_id_matrix(division: np.ndarray, birth: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """18-character 公民身份号码 as an (n, 18) byte matrix: address code, YYYYMMDD, sequence, MOD 11-2 check char."""
    year = birth.astype("datetime64[Y]").astype(np.int32) + 1970
    month_start = birth.astype("datetime64[M]")
    month = month_start.astype(np.int32) % 12 + 1
    day = (birth - month_start).astype(np.int32) + 1
    digits = np.empty((17, len(birth)), dtype=np.uint8)  # one row per position: whole-row writes are contiguous
    position = 0
    for value, width in ((division, 6), (year * 10_000 + month * 100 + day, 8), (sequence, 3)):
        value = value.astype(np.int32)
        for offset in range(width - 1, -1, -1):
            value, digits[position + offset] = np.divmod(value, 10)
        position += width
    weighted = np.zeros(len(birth), dtype=np.int32)
    for position, weight in enumerate(ID_WEIGHTS):
        weighted += digits[position] * weight
    matrix = np.empty((len(birth), 18), dtype=np.uint8)
    matrix[:, :17] = (digits + np.uint8(ord("0"))).T
    matrix[:, 17] = ID_CHARS[(12 - weighted % 11) % 11]
    return matrix


def pick(rng: np.random.Generator, values: list[str], n: int) -> pa.Array:
    return pa.array(values).take(pa.array(rng.integers(0, len(values), n)))


def make_population(rows: int, seed: int = 2026) -> pa.Table:
    """A clean 人口基本信息 snapshot: every generated rule passes (checked by the caller)."""
    rng = np.random.default_rng(seed)
    # (birth day, sequence) is a bijection of a shuffled row number, so the ID numbers are unique for any
    # birthplace; up to 22,280 days × 1,000 sequence numbers fit.
    days = int((BIRTH_LAST - BIRTH_FIRST).astype(np.int64)) + 1
    if rows > days * 1_000:
        raise SystemExit(f"at most {days * 1_000:,} unique ID numbers fit the generated birth years")
    slot = rng.permutation(rows)
    day = slot % days
    birth = BIRTH_FIRST + day.astype("timedelta64[D]")
    sequence = (slot // days + day * 37) % 1_000  # shifted per day to spread the numbers; still unique within a day
    division = np.array(BIRTH_DIVISIONS)[rng.integers(0, len(BIRTH_DIVISIONS), rows)]
    del slot, day

    ids = fixed_width_strings(resident_id_matrix(division, birth, sequence))
    gender = pa.array(["2", "1"]).take(pa.array(sequence % 2))  # 17th digit odd = 男 "1"
    one_char = rng.random(rows) < 0.3
    name = pc.binary_join_element_wise(pick(rng, SURNAMES, rows), pick(rng, GIVEN, rows),
                                       pc.if_else(pa.array(one_char), "", pick(rng, GIVEN, rows)), "")
    ethnic = pc.if_else(pa.array(rng.random(rows) < 0.91), "01", pick(rng, ETHNIC_CODES, rows))
    district = rng.integers(0, len(RESIDENCE_DIVISIONS), rows)
    division_codes = pa.array(list(RESIDENCE_DIVISIONS)).take(pa.array(district))
    address = pc.binary_join_element_wise(
        "浙江省杭州市", pa.array(list(RESIDENCE_DIVISIONS.values())).take(pa.array(district)),
        pick(rng, STREETS, rows), pa.array(rng.integers(1, 999, rows)).cast(pa.string()), "号", "")
    household = pa.array(rng.integers(100_000_000, 1_000_000_000, rows)).cast(pa.string())
    # Optional items: some missing, which no rule flags.
    relation = pc.if_else(pa.array(rng.random(rows) < 0.05), pa.scalar(None, pa.string()),
                          pick(rng, RELATION_CODES, rows))
    education = pc.if_else(pa.array(rng.random(rows) < 0.10), pa.scalar(None, pa.string()),
                           pick(rng, EDUCATION_CODES, rows))
    return pa.table({"sfzhm": ids, "xm": name, "xbdm": gender, "csrq": pa.array(birth), "mzdm": ethnic,
                     "hjdz": address, "hjdxzqhdm": division_codes, "hh": household, "yhzgxdm": relation,
                     "whcddm": education})


def inject_errors(clean: pa.Table, rate: float, seed: int = 7, per_check: bool = True
                  ) -> tuple[pa.Table, dict[str, int], dict[str, int]]:
    """Break rows with one error each; returns the table, rows per kind and the failing-row count each rule should
    report. per_check (the shared notes' definition, "1% failing rows per check"): every one of the eight checks
    fails on `rate` of the rows — disjoint sets, so 8 × rate of the rows carry one error. Otherwise `rate` of the rows
    carry one error in all, the kinds in equal shares (each check fails on rate / 8)."""
    rng = np.random.default_rng(seed)
    n = clean.num_rows
    total = round(n * rate) * (len(ERROR_KINDS) if per_check else 1)
    if total > n:
        raise SystemExit(f"{rate:.0%} per check × {len(ERROR_KINDS)} checks needs more rows than there are")
    chosen = rng.choice(n, size=total, replace=False)
    groups = dict(zip(ERROR_KINDS, np.array_split(chosen, len(ERROR_KINDS))))
    if len(groups["duplicate_key"]) % 2:  # duplicates come in pairs; hand an odd one out to another kind
        groups["missing_name"] = np.append(groups["missing_name"], groups["duplicate_key"][-1])
        groups["duplicate_key"] = groups["duplicate_key"][:-1]

    def mask(kind: str) -> pa.Array:
        m = np.zeros(n, dtype=bool)
        m[groups[kind]] = True
        return pa.array(m)

    # Duplicate key: the second row of each pair takes the first's ID and the gender and birth date that go with it.
    pairs = groups["duplicate_key"].reshape(-1, 2)
    source = np.arange(n)
    source[pairs[:, 1]] = pairs[:, 0]
    take = pa.array(source)

    ids = fixed_width_matrix(clean.column("sfzhm"), 18)[source]
    bad = groups["bad_check_char"]
    ids[bad, 17] = WRONG_CHECK_CHAR[ids[bad, 17]]
    gender = clean.column("xbdm").take(take)
    gender = pc.if_else(mask("gender_mismatch"), pc.if_else(pc.equal(gender, "1"), "2", "1"), gender)
    birth = clean.column("csrq").to_numpy()[source]
    birth[groups["birth_date_mismatch"]] += np.timedelta64(1, "D")

    columns = {
        "sfzhm": fixed_width_strings(ids),
        "xm": pc.if_else(mask("missing_name"), pa.scalar(None, pa.string()), clean.column("xm")),
        "xbdm": gender,
        "csrq": pa.array(birth),
        "mzdm": pc.if_else(mask("unknown_ethnic_code"), "99", clean.column("mzdm")),  # 2 characters, not in the list
        "hjdxzqhdm": pc.if_else(mask("unknown_division"), "999999", clean.column("hjdxzqhdm")),  # well-formed, unknown
        "hh": pc.if_else(mask("malformed_household_no"), pc.utf8_slice_codeunits(clean.column("hh"), 0, 8),
                         clean.column("hh")),  # 8 digits: the pattern wants 9–18
    }
    table = pa.table({name: columns.get(name, clean.column(name)) for name in clean.column_names})
    per_kind = {kind: len(rows) for kind, rows in groups.items()}
    expected = {rule_id: per_kind[kind] for kind, rule_id in ERROR_KINDS.items()}
    return table, per_kind, expected


# ---------------------------------------------------------------------------------------------------------------------
# Measurements, each in its own child process


def peak_rss_mb() -> float:
    """This process's peak RSS (MiB): VmHWM, not getrusage's ru_maxrss.

    Linux carries ru_maxrss across execve, so a spawned child starts with its parent's peak (here the parent holds
    the generated table: ~3.7 GB at 10M rows) and would report that instead of its own. VmHWM belongs to the
    process's own address space, created fresh by exec.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # no procfs: ru_maxrss is the best there is (bytes on macOS, KiB elsewhere)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024


def timed(repeat: int, run: Callable[[], Any]) -> tuple[list[float], Any]:
    """Seconds of each of `repeat` calls of run(), and the last call's result."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t)
    return times, result


def measure_fast(path: str, rules: list[Rule], gx_rule_ids: list[str], repeat: int, out: mp.Queue) -> None:
    from quality.executor import evaluate, run_rules

    t = time.perf_counter()
    table = pq.read_table(path)
    read_s = time.perf_counter() - t
    loaded_rss = peak_rss_mb()
    gx_ids = set(gx_rule_ids)
    subset = [r for r in rules if r.id in gx_ids]
    run_rules(rules, table.slice(0, WARM_UP_ROWS))  # one-time costs (division table, lazy imports) are not throughput
    subset_s, subset_outcomes = timed(repeat, lambda: run_rules(subset, table))
    full_s, outcomes = timed(repeat, lambda: run_rules(rules, table))
    peak = peak_rss_mb()
    # An extra pass, after the figures above, to show where the time goes.
    per_rule = {r.id: timed(1, lambda r=r: evaluate(r, table))[0][0] for r in rules}
    out.put({"read_s": read_s, "subset_s": subset_s, "full_s": full_s, "rows": table.num_rows,
             "subset_counts": {o.rule.id: o.failing_count for o in subset_outcomes},
             "counts": {o.rule.id: o.failing_count for o in outcomes}, "per_rule_s": per_rule,
             "loaded_rss_mb": loaded_rss, "peak_rss_mb": peak})


def measure_stream(path: str, rules: list[Rule], repeat: int, out: mp.Queue) -> None:
    """The production path (quality.service.run_quality): row-local rules a row group at a time, cross-row rules on
    their columns only — reading included, since streaming interleaves it with the checks."""
    from quality.executor import run_rules, run_rules_streaming

    # One-time costs, as for the other executors — from the first row group only, so the whole table is never read.
    run_rules(rules, pq.ParquetFile(path).read_row_group(0).slice(0, WARM_UP_ROWS))
    stream_s, outcomes = timed(repeat, lambda: run_rules_streaming(rules, pq.ParquetFile(path)))
    out.put({"stream_s": stream_s, "counts": {o.rule.id: o.failing_count for o in outcomes},
             "peak_rss_mb": peak_rss_mb()})


def measure_gx(path: str, rules: list[Rule], repeat: int, out: mp.Queue) -> None:
    t = time.perf_counter()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from quality.gx_executor import build_suite
    import_s = time.perf_counter() - t

    t = time.perf_counter()
    table = pq.read_table(path)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    frame = table.to_pandas()
    convert_s = time.perf_counter() - t
    rows = table.num_rows
    del table  # a plain GX user holds only the DataFrame
    loaded_rss = peak_rss_mb()

    context = gx.get_context(mode="ephemeral")  # must exist before the suite takes expectations
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite, used = build_suite(rules, "bench")
    whole = context.data_sources.add_pandas("bench").add_dataframe_asset("population") \
        .add_batch_definition_whole_dataframe("whole")
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [KEY]}
    # Warm-up, as for our executor: GX's one-time costs (lazy imports, metric registry) are not throughput.
    warm_up = whole.get_batch(batch_parameters={"dataframe": frame.head(WARM_UP_ROWS)})
    warm_up.validate(suite, result_format=result_format)
    batch = whole.get_batch(batch_parameters={"dataframe": frame})
    validate_s, result = timed(repeat, lambda: batch.validate(suite, result_format=result_format))
    counts, listed = {}, {}
    for res in result.results:
        rule_id = res.expectation_config.meta["rule_id"]
        counts[rule_id] = res.result.get("unexpected_count")
        listed[rule_id] = len(res.result.get("unexpected_index_list") or [])
    out.put({"import_s": import_s, "read_s": read_s, "convert_s": convert_s, "validate_s": validate_s, "rows": rows,
             "rules": len(used), "success": bool(result.success), "counts": counts, "listed": listed,
             "exceptions": sum(1 for r in result.results if r.exception_info.get("raised_exception")),
             "loaded_rss_mb": loaded_rss, "peak_rss_mb": peak_rss_mb()})


class ChildFailed(RuntimeError):
    pass


def in_child(target: Callable[..., None], *args: Any) -> dict:
    """Run target(*args, queue) in a fresh spawned process; return what it put on the queue."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, results))
    proc.start()
    while True:  # poll rather than block: a child killed by the OOM killer never reports
        try:
            result = results.get(timeout=5)
            break
        except queue.Empty:
            if not proc.is_alive():
                try:
                    result = results.get(timeout=1)
                    break
                except queue.Empty:
                    raise ChildFailed(f"{target.__name__} exited with code {proc.exitcode} before reporting") from None
    proc.join()
    return result


# ---------------------------------------------------------------------------------------------------------------------


def check_clean(rules: list[Rule], table: pa.Table) -> None:
    from quality.executor import run_rules

    failing = {o.rule.id: o.failing_count for o in run_rules(rules, table) if o.failing_count}
    if failing:
        raise SystemExit(f"generated clean data fails rules (generator bug): {failing}")


def differences(ours: dict[str, int], theirs: dict[str, int]) -> dict[str, tuple]:
    return {rule_id: (ours.get(rule_id), theirs.get(rule_id)) for rule_id in sorted(set(ours) | set(theirs))
            if ours.get(rule_id) != theirs.get(rule_id)}


def bench_snapshot(path: str, rows: int, rate: float, rules: list[Rule], gx_rules: list[Rule], expected: dict[str, int],
                   args: argparse.Namespace, run: dict) -> list[str]:
    """Measure one Parquet snapshot with both executors; fills `run` and returns warnings."""
    warnings: list[str] = []
    label = f"{rows:,} rows {rate:.0%}"

    fast = in_child(measure_fast, path, rules, [r.id for r in gx_rules], args.repeat)
    full_s, subset_s = statistics.median(fast["full_s"]), statistics.median(fast["subset_s"])
    slowest = sorted(fast["per_rule_s"].items(), key=lambda kv: -kv[1])[:5]
    run["fast"] = {
        "read_s": round(fast["read_s"], 2),
        "full_s": round(full_s, 2), "full_rows_per_s": round(rows / full_s),
        "full_runs_s": [round(v, 2) for v in fast["full_s"]],
        "gx_subset_s": round(subset_s, 2), "gx_subset_rows_per_s": round(rows / subset_s),
        "gx_subset_runs_s": [round(v, 2) for v in fast["subset_s"]],
        "failing": sum(fast["counts"].values()),
        "rss_after_read_mb": round(fast["loaded_rss_mb"]), "peak_rss_mb": round(fast["peak_rss_mb"]),
        "slowest_rules_s": {rule_id: round(v, 2) for rule_id, v in slowest},
    }
    f = run["fast"]
    print(f"  fast: full suite {f['full_s']:.2f} s ({f['full_rows_per_s']:,} rows/s), "
          f"GX subset {f['gx_subset_s']:.2f} s ({f['gx_subset_rows_per_s']:,} rows/s), "
          f"{f['failing']:,} failing (row, rule) pairs; peak RSS {f['peak_rss_mb']} MB "
          f"({f['rss_after_read_mb']} MB right after reading the table; read {f['read_s']:.2f} s, not counted)")
    print("        slowest rules: " + ", ".join(f"{rule_id} {v:.2f} s" for rule_id, v in slowest[:3]), flush=True)
    if diff := differences(fast["counts"], {r.id: expected.get(r.id, 0) for r in rules}):
        warnings.append(f"{label}: fast executor vs injected failing counts (ours, injected): {diff}")
        print(f"  WARNING our executor's failing counts differ from the injected ones (ours, injected): {diff}")
    run["fast_matches_injected"] = not diff

    stream = in_child(measure_stream, path, rules, args.repeat)
    stream_s = statistics.median(stream["stream_s"])
    run["stream"] = {"seconds": round(stream_s, 2), "rows_per_s": round(rows / stream_s),
                     "peak_rss_mb": round(stream["peak_rss_mb"]), "matches_in_memory": stream["counts"] == fast["counts"]}
    print(f"  streaming (production path, reading included): {stream_s:.2f} s ({rows / stream_s:,.0f} rows/s), "
          f"peak RSS {run['stream']['peak_rss_mb']} MB, same results as in memory: "
          f"{run['stream']['matches_in_memory']}", flush=True)
    if not run["stream"]["matches_in_memory"]:
        warnings.append(f"{label}: streaming and in-memory failing counts differ")

    if rows > args.gx_max_rows:
        run["gx"] = {"skipped": f"rows > --gx-max-rows {args.gx_max_rows:,}"}
        print(f"  gx: skipped (rows > --gx-max-rows {args.gx_max_rows:,})", flush=True)
        return warnings
    try:
        g = in_child(measure_gx, path, gx_rules, args.repeat)
    except ChildFailed as exc:  # e.g. out of memory with a large --gx-max-rows: keep the other figures
        run["gx"] = {"failed": str(exc)}
        warnings.append(f"{label}: plain GX failed: {exc}")
        print(f"  WARNING plain GX failed: {exc}", flush=True)
        return warnings
    validate_s = statistics.median(g["validate_s"])
    run["gx"] = {
        "import_s": round(g["import_s"], 1), "read_s": round(g["read_s"], 2), "to_pandas_s": round(g["convert_s"], 2),
        "validate_s": round(validate_s, 1), "rows_per_s": round(rows / validate_s),
        "validate_runs_s": [round(v, 1) for v in g["validate_s"]],
        "rules": g["rules"], "failing": sum(v or 0 for v in g["counts"].values()), "exceptions": g["exceptions"],
        "rss_after_read_mb": round(g["loaded_rss_mb"]), "peak_rss_mb": round(g["peak_rss_mb"]),
    }
    run["ratio_gx_over_fast"] = round(validate_s / subset_s, 1)
    run["rss_ratio_gx_over_fast"] = round(g["peak_rss_mb"] / fast["peak_rss_mb"], 1)
    x = run["gx"]
    print(f"  gx:   {x['validate_s']:.1f} s ({x['rows_per_s']:,} rows/s) for the same {x['rules']} rules, peak RSS "
          f"{x['peak_rss_mb']} MB ({x['rss_after_read_mb']} MB with the DataFrame built; import "
          f"{x['import_s']:.1f} s, read {x['read_s']:.2f} s, to_pandas {x['to_pandas_s']:.2f} s, not counted)")
    print(f"  GX takes {run['ratio_gx_over_fast']}x our executor's time on the same rules and rows, "
          f"{run['rss_ratio_gx_over_fast']}x its peak memory", flush=True)
    if g["exceptions"]:
        warnings.append(f"{label}: {g['exceptions']} GX expectations raised an exception")
        print(f"  WARNING {g['exceptions']} GX expectations raised an exception")
    if diff := differences(fast["subset_counts"], g["counts"]):
        warnings.append(f"{label}: fast vs GX unexpected counts (ours, GX): {diff}")
        print(f"  WARNING per-rule failing counts differ (ours, GX): {diff}")
    run["gx_matches_fast"] = not diff
    if short := {k: (g["counts"][k], v) for k, v in g["listed"].items() if v != g["counts"][k]}:
        warnings.append(f"{label}: GX unexpected_index_list shorter than unexpected_count (count, listed): {short}")
        print(f"  WARNING GX listed fewer failing rows than it counted (count, listed): {short}")
    return warnings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts")
    ap.add_argument("--error-rate", default="0.01,0.10", help="comma-separated failing fractions")
    ap.add_argument("--errors", choices=("per-check", "per-row"), default="per-check",
                    help="per-check: each of the 8 checks fails on that fraction of rows (the notes' definition); "
                         "per-row: that fraction of rows carries one error in all")
    ap.add_argument("--gx-max-rows", type=int, default=1_000_000, help="run plain GX only up to this many rows")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the median is reported")
    args = ap.parse_args()
    sizes = [int(v) for v in args.rows.split(",")]
    rates = [float(v) for v in args.error_rate.split(",")]

    t = time.perf_counter()
    rules = load_rules()
    from quality.gx_executor import GX_KINDS

    gx_rules = [r for r in rules if r.kind in GX_KINDS]
    kinds = dict(Counter(r.kind for r in rules))
    print(f"{DATASET} 人口基本信息: {len(rules)} generated rules ({time.perf_counter() - t:.1f} s) — "
          + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    print(f"plain GX runs {len(gx_rules)} of them (kinds {', '.join(sorted(GX_KINDS))}); only the full suite has "
          + ", ".join(r.id for r in rules if r.kind not in GX_KINDS), flush=True)

    figures: dict = {"dataset": DATASET, "errors": args.errors, "rules": len(rules), "rule_kinds": kinds, "gx_rules": len(gx_rules),
                     "gx_max_rows": args.gx_max_rows, "repeat": args.repeat, "runs": []}
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="odh-bench-quality-") as tmp:
        for rows in sizes:
            t = time.perf_counter()
            clean = make_population(rows)
            generate_s = time.perf_counter() - t
            t = time.perf_counter()
            check_clean(rules, clean)
            print(f"\n{rows:,} rows generated in {generate_s:.1f} s; the clean data passes all {len(rules)} rules "
                  f"(checked in {time.perf_counter() - t:.1f} s)", flush=True)
            for rate in rates:
                table, per_kind, expected = inject_errors(clean, rate, per_check=args.errors == "per-check")
                path = f"{tmp}/population_{rows}_{rate}.parquet"
                # The row-group size of a collected snapshot (catalog.collection), so streaming reads it the same way.
                pq.write_table(table, path, row_group_size=131_072)
                del table
                run: dict = {"rows": rows, "error_rate": rate, "errors": args.errors,
                             "injected_rows": sum(per_kind.values()),
                             "injected": per_kind, "generate_s": round(generate_s, 1),
                             "parquet_mib": round(Path(path).stat().st_size / 2**20)}
                print(f"[{rows:,} rows, {rate:.0%} errors {args.errors}] {run['injected_rows']:,} rows with one error each "
                      f"({per_kind['duplicate_key'] // 2:,} duplicate pairs); Parquet {run['parquet_mib']} MiB",
                      flush=True)
                warnings += bench_snapshot(path, rows, rate, rules, gx_rules, expected, args, run)
                figures["runs"].append(run)
                Path(path).unlink()
            del clean

    figures["goals"] = goals(figures["runs"])
    figures["warnings"] = warnings
    print_summary(figures)
    print(json.dumps(figures, ensure_ascii=False))


GOALS = {
    "ratio_ge_10x_at_1pct": "≥ 10× plain GX at 1% failing rows",
    "ratio_ge_50x_at_10pct": "≥ 50× plain GX at 10% failing rows",
    "full_suite_10m_under_10s": "10M rows through the full suite in < 10 s (streaming, reading included)",
    "peak_rss_under_2gb": "peak RSS of the streaming run's process < 2 GB (2,048 MB)",
}


def goals(runs: list[dict]) -> dict:
    def verdict(values: list[float], ok: Callable[[float], bool]) -> dict:
        return {"met": all(map(ok, values)) if values else None, "measured": values}

    def ratios(rate: float) -> list[float]:
        return [r["ratio_gx_over_fast"] for r in runs
                if "ratio_gx_over_fast" in r and abs(r["error_rate"] - rate) < 1e-9]

    return {
        "ratio_ge_10x_at_1pct": verdict(ratios(0.01), lambda v: v >= 10),
        "ratio_ge_50x_at_10pct": verdict(ratios(0.10), lambda v: v >= 50),
        # Judged on the production path (streaming, reading included).
        "full_suite_10m_under_10s": verdict([r["stream"]["seconds"] for r in runs if r["rows"] >= 10_000_000],
                                            lambda v: v < 10),
        "peak_rss_under_2gb": verdict([r["stream"]["peak_rss_mb"] for r in runs], lambda v: v < 2048),
    }


def print_summary(figures: dict) -> None:
    print(f"\n{'':19}|{' our executor, full suite':<30}| the same {figures['gx_rules']} rules: ours vs plain GX")
    print(f"{'rows':>11} {'errors':>6} | {'seconds':>8} {'rows/s':>11} {'RSS MB':>7} | {'ours':>7} {'GX':>7} "
          f"{'GX rows/s':>10} {'GX RSS':>7} {'GX/ours':>7}")
    for r in figures["runs"]:
        f, g = r["fast"], r["gx"]
        if "validate_s" in g:
            gx_cols = (f"{g['validate_s']:>6.1f}s {g['rows_per_s']:>10,} {g['peak_rss_mb']:>7} "
                       f"{r['ratio_gx_over_fast']:>6}x")
        else:
            gx_cols = f"{'skipped' if 'skipped' in g else 'failed':>7}"
        print(f"{r['rows']:>11,} {r['error_rate']:>6.0%} | {f['full_s']:>7.2f}s {f['full_rows_per_s']:>11,} "
              f"{f['peak_rss_mb']:>7} | {f['gx_subset_s']:>6.2f}s {gx_cols}")
    print("\nGoals:")
    for key, label in GOALS.items():
        v = figures["goals"][key]
        state = "not measured" if v["met"] is None else "met" if v["met"] else "NOT MET"
        print(f"  {label}: {state}" + (f" (measured: {', '.join(map(str, v['measured']))})" if v["measured"] else ""))
    for w in figures["warnings"]:
        print(f"WARNING {w}")


if __name__ == "__main__":
    main()
