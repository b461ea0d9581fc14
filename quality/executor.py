"""The fast executor: every generated rule evaluated with pyarrow.compute / numpy over the whole snapshot.

Semantics follow Great Expectations' (its results must equal GX's — tests/test_quality.py (test_fast_executor_results_equal_great_expectations) proves it): a
value-level rule judges present values only (nulls are completeness's business), `unique` marks every occurrence of a
repeated value, and a rule's failing rows are reported by their key (the dataset's key columns).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quality import identifiers, patterns
from quality.suite import Rule


@dataclass
class RuleOutcome:
    rule: Rule
    evaluated: int  # rows the rule judged (present values; all rows for not_null and uniqueness)
    failing: np.ndarray  # row indexes that fail, ascending

    @property
    def failing_count(self) -> int:
        return int(self.failing.size)

    @property
    def rate(self) -> float:
        return self.failing_count / self.evaluated if self.evaluated else 0.0


def _indexes(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    arr = mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
    return np.flatnonzero(pc.fill_null(arr, False).to_numpy(zero_copy_only=False))


def evaluate(rule: Rule, table: pa.Table) -> RuleOutcome:
    col = table.column(rule.columns[0])
    present = pc.is_valid(col)
    present_count = int(pc.sum(present).as_py() or 0)
    kind = rule.kind
    if kind == "not_null":
        return RuleOutcome(rule, table.num_rows, _indexes(pc.is_null(col)))
    if kind == "regex":
        # Anchored fixed-shape patterns (most of the standards') are judged on the bytes; the rest by RE2.
        matched = patterns.matches(col, rule.params["pattern"])
        if matched is None:
            matched = pc.match_substring_regex(col, rule.params["pattern"])
        bad = pc.invert(matched)
        return RuleOutcome(rule, present_count, _indexes(bad))
    if kind == "length":
        length = pc.utf8_length(col)
        bad = pa.scalar(False)
        if rule.params.get("min") is not None:
            bad = pc.or_(bad, pc.less(length, rule.params["min"]))
        if rule.params.get("max") is not None:
            bad = pc.or_(bad, pc.greater(length, rule.params["max"]))
        return RuleOutcome(rule, present_count, _indexes(pc.and_(present, bad)))
    if kind == "in_set":
        bad = pc.invert(pc.is_in(col, value_set=pa.array(rule.params["values"], type=col.type)))
        return RuleOutcome(rule, present_count, _indexes(pc.and_(present, bad)))
    if kind == "between":
        low, high = rule.params.get("min"), rule.params.get("max")
        bad = pa.scalar(False)
        if low is not None:
            bad = pc.or_(bad, pc.less(col, pa.scalar(low).cast(col.type)))
        if high is not None:
            bad = pc.or_(bad, pc.greater(col, pa.scalar(high).cast(col.type)))
        return RuleOutcome(rule, present_count, _indexes(pc.and_(present, bad)))
    if kind == "identifier":
        ok = identifiers.CHECKS[rule.params["check"]](col)
        return RuleOutcome(rule, present_count, _indexes(pc.invert(ok)))
    if kind == "unique":
        return RuleOutcome(rule, present_count, _duplicated(table, rule.columns))
    if kind == "compound_unique":
        return RuleOutcome(rule, table.num_rows, _duplicated(table, rule.columns))
    if kind in ("id_birth_date", "id_gender"):
        other = table.column(rule.columns[1])
        check = identifiers.id_birth_date_matches if kind == "id_birth_date" else identifiers.id_gender_matches
        ok = check(col, other)
        judged = int(pc.sum(pc.is_valid(ok)).as_py() or 0)
        return RuleOutcome(rule, judged, _indexes(pc.invert(ok)))
    if kind == "consistency":
        raise ValueError("consistency rules need the source's table: use evaluate_consistency")
    raise ValueError(f"unknown rule kind {kind}")


def evaluate_consistency(rule: Rule, table: pa.Table, source: pa.Table | None) -> RuleOutcome:
    """Rows whose key is found in the source and whose (present) value differs from the source's (present) value.
    Judged: rows whose key matches a source row with both values present. No source version yet: nothing judged."""
    if source is None:
        return RuleOutcome(rule, 0, np.empty(0, dtype=np.int64))
    key, column = rule.columns
    mine = pa.table({"__k": table.column(key), "__v": table.column(column),
                     "__row": pa.array(np.arange(table.num_rows))})
    theirs = pa.table({"__k": source.column(rule.params["source_key"]),
                       "__sv": source.column(rule.params["source_column"])})
    theirs = theirs.filter(pc.is_valid(theirs.column("__k")))
    # A duplicated source key would multiply rows: keep one value per key (uniqueness has its own rule).
    theirs = theirs.group_by("__k").aggregate([("__sv", "max")]).rename_columns(["__k", "__sv"])
    joined = mine.join(theirs, keys="__k", join_type="inner")
    both = pc.and_(pc.is_valid(joined.column("__v")), pc.is_valid(joined.column("__sv")))
    joined = joined.filter(both)
    differs = pc.not_equal(joined.column("__v"), pc.cast(joined.column("__sv"), joined.schema.field("__v").type))
    failing = np.sort(joined.filter(differs).column("__row").to_numpy())
    return RuleOutcome(rule, joined.num_rows, failing)


_MIX = np.uint64(0xBF58476D1CE4E5B9)


def _fixed_width_words(column: pa.Array) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """For a string column whose present values all have the same byte length w (8 ≤ w ≤ 64) — ID numbers, credit
    codes, most keys — the row numbers of the present values and 8-byte words that together cover every byte of each
    value (the last word overlaps the one before it), read straight from Arrow's data buffer without copying it."""
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        return None
    rows = np.flatnonzero(pc.is_valid(column).to_numpy(zero_copy_only=False))
    values = column.filter(pc.is_valid(column)) if column.null_count else column
    if len(values) == 0:
        return None
    lengths = pc.binary_length(values)
    width = pc.min_max(lengths).as_py()
    if width["min"] != width["max"] or not 8 <= width["min"] <= 64:
        return None
    w = width["min"]
    offsets_buffer, data = values.buffers()[1], values.buffers()[2]
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    start = int(np.frombuffer(offsets_buffer, dtype=offset_type, count=1, offset=values.offset * offset_type().itemsize)[0])
    raw = np.frombuffer(data, dtype=np.uint8)
    starts = sorted(set(range(0, w - 7, 8)) | {w - 8})
    # Strided, unaligned views into the data buffer: no copies (fresh memory costs more than the arithmetic here).
    words = [np.ndarray(shape=(len(values),), dtype="<u8", buffer=raw, offset=start + k, strides=(w,))
             for k in starts]
    return rows, words


def _neighbours_equal(words: list[np.ndarray], order: np.ndarray) -> np.ndarray:
    """Whether each row in `order` holds the same bytes as the next one."""
    equal = np.ones(max(0, len(order) - 1), dtype=bool)
    for word in words:
        ordered_word = word[order]
        equal &= ordered_word[1:] == ordered_word[:-1]
    return equal


def _duplicated_fixed_width(column: pa.Array) -> np.ndarray | None:
    """Every occurrence of a repeated value by sorting one 64-bit hash per row, then confirming candidates on the full
    bytes — several times faster than hashing the strings into a dictionary (10M ID numbers: ~1 s instead of 4–6 s)."""
    found = _fixed_width_words(column)
    if found is None:
        return None
    rows, words = found
    digest = words[0].copy()
    scratch = np.empty_like(digest)  # one buffer for every temporary: each fresh 80 MB (10M rows) costs page faults
    for word in words[1:]:
        digest ^= np.right_shift(digest, np.uint64(29), out=scratch)
        digest *= _MIX
        digest += word
    digest ^= np.right_shift(digest, np.uint64(31), out=scratch)  # finalise: the low bits index the table below
    digest *= _MIX
    digest ^= np.right_shift(digest, np.uint64(29), out=scratch)
    # A plain sort of the hashes (SIMD, ~7× faster than argsort) finds the repeated hashes; searchsorted marks them.
    ordered = np.sort(digest)
    repeated_hashes = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated_hashes) == 0:
        return np.empty(0, dtype=np.int64)
    # Mark the rows holding a repeated hash through a table indexed by the hash's low bits (a random gather is ~5×
    # cheaper than searchsorted here; ~4 slots per row, at most 16 MiB); the few false positives are unique values
    # the exact check drops.
    bits = int(min(24, max(16, int(len(digest) - 1).bit_length() + 2)))
    low_bits = np.uint64((1 << bits) - 1)
    seen = np.zeros(1 << bits, dtype=bool)
    seen[(repeated_hashes & low_bits).astype(np.int64)] = True
    del ordered
    slots = np.bitwise_and(digest, low_bits, out=scratch).view(np.int64)  # < 2**bits: the same bits as int64
    picked = np.flatnonzero(seen[slots])
    # Exact check on the candidates: order them by hash and compare neighbours' bytes. Equal values are adjacent
    # unless two different values share a hash (~never with 64 bits); then order by every word too.
    exact = picked[np.argsort(digest[picked], kind="stable")]
    hashes = digest[exact]
    same_hash = hashes[1:] == hashes[:-1]
    equal = _neighbours_equal(words, exact)
    if (same_hash != equal).any():  # a hash shared by different values: sort by the bytes as well
        exact = picked[np.lexsort([w[picked] for w in reversed(words)] + [digest[picked]])]
        equal = _neighbours_equal(words, exact)
    repeated = np.zeros(len(exact), dtype=bool)
    repeated[1:] |= equal
    repeated[:-1] |= equal
    return np.sort(rows[exact[repeated]])


def _duplicated(table: pa.Table, columns: tuple[str, ...]) -> np.ndarray:
    """Rows whose (non-null) key value occurs more than once — every occurrence, as GX reports it."""
    if len(columns) == 1:
        fast = _duplicated_fixed_width(table.column(columns[0]).combine_chunks())
        if fast is not None:
            return fast
        # Dictionary-encode and count codes: one hash pass and a bincount, ~30% faster and much lighter than a
        # group-by plus join over 10M keys.
        encoded = pc.dictionary_encode(table.column(columns[0]).combine_chunks())
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        present = codes >= 0
        counts = np.bincount(codes[present], minlength=len(encoded.dictionary))
        return np.flatnonzero(present & (counts[np.where(present, codes, 0)] > 1))
    sub = table.select(list(columns)).append_column("__row", pa.array(np.arange(table.num_rows)))
    counts = sub.group_by(list(columns)).aggregate([("__row", "count")])
    dup_keys = counts.filter(pc.greater(counts.column("__row_count"), 1)).drop_columns(["__row_count"])
    if dup_keys.num_rows == 0:
        return np.empty(0, dtype=np.int64)
    rows = sub.join(dup_keys, keys=list(columns), join_type="inner").column("__row")
    return np.sort(rows.to_numpy())


def run_rules(rules: list[Rule], table: pa.Table, sources: dict[int, pa.Table | None] | None = None
              ) -> list[RuleOutcome]:
    """sources: the authoritative datasets' latest tables, by dataset id, for the consistency rules."""
    sources = sources or {}
    return [evaluate_consistency(rule, table, sources.get(rule.params["source_dataset_id"]))
            if rule.kind == "consistency" else evaluate(rule, table) for rule in rules]


# Rules that compare rows with each other (or with another dataset) need their columns whole; every other rule
# judges one row at a time and runs row group by row group, so a 10M-row snapshot is never in memory at once.
WHOLE_COLUMN_KINDS = {"unique", "compound_unique", "consistency"}
STREAM_WORKERS = max(1, min(4, os.cpu_count() or 1))


def run_rules_streaming(rules: list[Rule], parquet: pq.ParquetFile,
                        sources: dict[int, pa.Table | None] | None = None) -> list[RuleOutcome]:
    """The same outcomes as `run_rules` on the whole table, reading row-local rules' columns a row group at a time
    and the cross-row rules' columns (usually the key alone) whole.

    Row groups are read in order on this thread and checked on a small thread pool (pyarrow.compute and numpy
    release the GIL), while the cross-row rules run beside them; at most a few groups are in memory at once.
    """
    sources = sources or {}
    local = [r for r in rules if r.kind not in WHOLE_COLUMN_KINDS]
    whole = [r for r in rules if r.kind in WHOLE_COLUMN_KINDS]
    judged = {r.id: 0 for r in local}
    failing: dict[str, list[np.ndarray]] = {r.id: [] for r in local}
    local_columns = sorted({c for r in local for c in r.columns})

    def check_group(batch: pa.Table, offset: int) -> list[tuple[str, int, np.ndarray]]:
        return [(o.rule.id, o.evaluated, o.failing + offset) for o in (evaluate(r, batch) for r in local)]

    def collect(results: list[tuple[str, int, np.ndarray]]) -> None:
        for rule_id, evaluated, rows in results:
            judged[rule_id] += evaluated
            if rows.size:
                failing[rule_id].append(rows)

    whole_futures = {}
    with ThreadPoolExecutor(max_workers=STREAM_WORKERS) as pool:
        if whole:
            table = parquet.read(columns=sorted({c for r in whole for c in r.columns}))
            for rule in whole:
                whole_futures[rule.id] = (
                    pool.submit(evaluate_consistency, rule, table, sources.get(rule.params["source_dataset_id"]))
                    if rule.kind == "consistency" else pool.submit(evaluate, rule, table))
        pending: deque = deque()
        offset = 0
        if local_columns:
            for group in range(parquet.num_row_groups):
                batch = parquet.read_row_group(group, columns=local_columns)
                pending.append(pool.submit(check_group, batch, offset))
                offset += batch.num_rows
                while len(pending) > STREAM_WORKERS:
                    collect(pending.popleft().result())  # in submission order: row numbers stay ascending
            while pending:
                collect(pending.popleft().result())
        outcomes = {rule_id: future.result() for rule_id, future in whole_futures.items()}
    for r in local:
        outcomes[r.id] = RuleOutcome(r, judged[r.id], np.concatenate(failing[r.id]) if failing[r.id]
                                     else np.empty(0, dtype=np.int64))
    return [outcomes[r.id] for r in rules]
