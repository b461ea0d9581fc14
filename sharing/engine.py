"""The data side of the sharing gateway (共享网关): the granted scope of a published version, and its pages.

A consumer holds a grant: a set of granted columns (items), a row filter that is always ANDed in, and masking (脱敏)
of some columns. The gateway reads an immutable Parquet version, builds the grant's *scope* once (`build_scope`:
row filter on the whole version, granted columns only, masked, with the open problem-ticket marks) and answers each
request from it: the client may narrow it further (`make_view`: conditions on granted, unmasked columns, and a sort
that is always total), then a page is sliced and encoded (`page_json`, `to_csv`, `to_arrow_stream`,
`to_parquet`). Paging cursors are signed (`encode_cursor` / `decode_cursor`).

Everything on the hot path is vectorised (pyarrow.compute / numpy). There is no expression language: a filter is a
list of (field, op, value) conditions, every value is coerced to the column's type and compared as a literal.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import functools
import hmac
import math
import re
import threading
import zoneinfo
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from catalog.errors import DomainError

__all__ = [
    "GatewayInputError", "ScopeError", "OPS", "Condition", "parse_conditions", "parse_filter_params",
    "bind_conditions", "to_expression", "MASK_KINDS", "mask_kind_for", "mask_array", "ColumnSpec",
    "OBJECTION_COLUMN", "POSITION_COLUMN", "build_scope", "make_view", "parse_sort", "encode_cursor",
    "decode_cursor", "output_table", "page_json", "json_rows", "JsonRowBlocks", "page_json_with_rows", "to_csv",
    "to_arrow_stream", "to_parquet",
]


class GatewayInputError(DomainError):
    """The request (filter, sort, cursor) is malformed or does not fit the data."""

    status_code = 400
    error = "invalid_request"


class ScopeError(DomainError):
    """The request reaches beyond the grant (RFC 6750 wording)."""

    status_code = 403
    error = "insufficient_scope"


# --------------------------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------------------------

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "prefix", "is_null", "not_null")
NULLARY_OPS = frozenset({"is_null", "not_null"})
MAX_CONDITIONS = 20
MAX_IN_VALUES = 1000
MAX_VALUE_CHARS = 1000
MAX_FIELD_CHARS = 200

_OPS_TEXT = "、".join(OPS)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None  # scalar; tuple for "in"; None for is_null/not_null


def _show(value: Any, limit: int = 60) -> str:
    """A value quoted for an error message, cut short so a huge input is not echoed back whole."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"“{text}”"


def _check_field(field: Any, where: str) -> str:
    if not isinstance(field, str) or not field.strip():
        raise GatewayInputError(f"{where}：字段名必须是非空字符串，收到 {_show(field)}")
    if len(field) > MAX_FIELD_CHARS:
        raise GatewayInputError(f"{where}：字段名过长（超过 {MAX_FIELD_CHARS} 个字符）")
    return field


def _check_op(op: Any, where: str) -> str:
    if op not in OPS:
        raise GatewayInputError(f"{where}：不支持的操作 {_show(op)}，可用的操作为 {_OPS_TEXT}")
    return op


def _check_scalar(value: Any, where: str) -> Any:
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GatewayInputError(f"{where}：筛选值必须是有限的数，收到 {_show(value)}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise GatewayInputError(f"{where}：筛选值过长（超过 {MAX_VALUE_CHARS} 个字符）")
        return value
    raise GatewayInputError(f"{where}：筛选值必须是字符串、数字或布尔值，收到 {_show(value)}")


def parse_conditions(raw: Any) -> list[Condition]:
    """Conditions stored as JSON (a grant's row filter): a list of {"field", "op", "value"} objects.

    "value" may be left out (or null) for is_null / not_null only; "in" takes a non-empty list of scalars.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise GatewayInputError(f"筛选条件必须是列表，收到 {type(raw).__name__}")
    if len(raw) > MAX_CONDITIONS:
        raise GatewayInputError(f"筛选条件过多：最多 {MAX_CONDITIONS} 个，收到 {len(raw)} 个")
    out: list[Condition] = []
    for i, item in enumerate(raw):
        where = f"第 {i + 1} 个筛选条件"
        if not isinstance(item, dict):
            raise GatewayInputError(f"{where}必须是对象（含 field、op、value），收到 {_show(item)}")
        extra = sorted(str(k) for k in item if k not in ("field", "op", "value"))
        if extra:
            raise GatewayInputError(f"{where}含有不支持的键：{'、'.join(extra)}（只允许 field、op、value）")
        for key in ("field", "op"):
            if key not in item:
                raise GatewayInputError(f"{where}缺少 {key}")
        field = _check_field(item["field"], where)
        op = _check_op(item["op"], where)
        value = item.get("value")
        if op in NULLARY_OPS:
            if value is not None:
                raise GatewayInputError(f"{where}：操作 {op} 不带值，收到 {_show(value)}")
            out.append(Condition(field, op, None))
        elif op == "in":
            if not isinstance(value, list) or not value:
                raise GatewayInputError(f"{where}：操作 in 需要一个非空的值列表，收到 {_show(value)}")
            if len(value) > MAX_IN_VALUES:
                raise GatewayInputError(f"{where}：in 的值最多 {MAX_IN_VALUES} 个，收到 {len(value)} 个")
            out.append(Condition(field, op, tuple(_check_scalar(v, where) for v in value)))
        else:
            if value is None:
                raise GatewayInputError(f"{where}：操作 {op} 需要一个值")
            out.append(Condition(field, op, _check_scalar(value, where)))
    return out


def parse_filter_params(params: list[str]) -> list[Condition]:
    """Conditions from query strings "field:op:value" (split on the first two ':' only, so a value may hold ':').

    "in" values are separated by '|'; is_null / not_null take no value ("field:is_null"). Every value is a literal
    string here (typed later by `bind_conditions`): there is no 'or' and no expression language.
    """
    if not params:
        return []
    if len(params) > MAX_CONDITIONS:
        raise GatewayInputError(f"筛选条件过多：最多 {MAX_CONDITIONS} 个，收到 {len(params)} 个")
    out: list[Condition] = []
    for raw in params:
        if not isinstance(raw, str) or not raw.strip():
            raise GatewayInputError("筛选条件为空：格式应为 字段:操作:值（如 district:eq:330106）")
        where = f"筛选条件 {_show(raw)}"
        parts = raw.split(":", 2)
        if len(parts) < 2:
            raise GatewayInputError(f"{where}格式不对：应为 字段:操作:值（如 district:eq:330106）")
        field = _check_field(parts[0], where)
        op = _check_op(parts[1], where)
        value = parts[2] if len(parts) == 3 else None
        if op in NULLARY_OPS:
            if value:
                raise GatewayInputError(f"{where}：操作 {op} 不带值（写作 {field}:{op}）")
            out.append(Condition(field, op, None))
            continue
        if not value:
            raise GatewayInputError(f"{where}缺少值：格式应为 字段:操作:值")
        if len(value) > MAX_VALUE_CHARS * (MAX_IN_VALUES if op == "in" else 1):
            raise GatewayInputError(f"{where}：筛选值过长")
        if op == "in":
            values = value.split("|")
            if any(v == "" for v in values):
                raise GatewayInputError(f"{where}：in 的值用 | 分隔，不能有空值")
            if len(values) > MAX_IN_VALUES:
                raise GatewayInputError(f"{where}：in 的值最多 {MAX_IN_VALUES} 个，收到 {len(values)} 个")
            out.append(Condition(field, op, tuple(_check_scalar(v, where) for v in values)))
        else:
            out.append(Condition(field, op, _check_scalar(value, where)))
    return out


_INT_RE = re.compile(r"[+-]?[0-9]{1,40}")
_NUM_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?"
                          r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _value_type(typ: pa.DataType) -> pa.DataType:
    return typ.value_type if pa.types.is_dictionary(typ) else typ


def _is_string(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _int_bounds(typ: pa.DataType) -> tuple[int, int]:
    bits = typ.bit_width
    if pa.types.is_unsigned_integer(typ):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _coerce(field: str, typ: pa.DataType, value: Any) -> Any:
    """One filter value as a Python value of the column's type; GatewayInputError naming field and value if not."""
    def bad(what: str) -> GatewayInputError:
        return GatewayInputError(f"字段 {field} 的筛选值 {_show(value)} 不是有效的{what}")

    if _is_string(typ):
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise bad("字符串")
    if pa.types.is_boolean(typ):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _BOOLS:
            return _BOOLS[value.strip().lower()]
        raise bad("布尔值（true/false/1/0）")
    if pa.types.is_integer(typ):
        if isinstance(value, bool):
            raise bad("整数")
        if isinstance(value, float):
            if not value.is_integer():
                raise bad("整数")
            value_int = int(value)
        elif isinstance(value, int):
            value_int = value
        elif isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            value_int = int(value.strip())
        else:
            raise bad("整数")
        low, high = _int_bounds(typ)
        if not low <= value_int <= high:
            raise GatewayInputError(f"字段 {field} 的筛选值 {_show(value)} 超出该列的取值范围（{low} 至 {high}）")
        return value_int
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        if isinstance(value, bool):
            raise bad("数值")
        if isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str) and _NUM_RE.fullmatch(value.strip()):
            text = value.strip()
        else:
            raise bad("数值")
        if pa.types.is_floating(typ):
            number = float(text)
            if not math.isfinite(number):
                raise bad("数值")
            return number
        number_dec = decimal.Decimal(text)
        # Plain positional form: pa.scalar(Decimal("1E+5")) would otherwise carry an exponent-based precision.
        plain = decimal.Decimal(format(number_dec, "f"))
        if len(plain.as_tuple().digits) > 38:
            raise GatewayInputError(f"字段 {field} 的筛选值 {_show(value)} 位数过多（最多 38 位有效数字）")
        return plain
    if pa.types.is_date(typ):
        if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise bad("日期（格式 YYYY-MM-DD）")
    if pa.types.is_timestamp(typ):
        parsed: dt.datetime | None = None
        if isinstance(value, str) and _DATETIME_RE.fullmatch(value.strip()):
            try:
                parsed = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                parsed = None
        if parsed is None:
            raise bad("时间（ISO 8601，如 2024-05-01T08:30:00）")
        if typ.tz is None:
            if parsed.tzinfo is not None:
                raise GatewayInputError(f"字段 {field} 的时间不带时区，筛选值 {_show(value)} 请去掉时区部分")
            return parsed
        if parsed.tzinfo is None:  # read in the column's own time zone
            try:
                zone: dt.tzinfo = zoneinfo.ZoneInfo(typ.tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                zone = dt.timezone.utc
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(dt.timezone.utc)
    raise GatewayInputError(f"字段 {field} 的类型 {typ} 不支持筛选")


def bind_conditions(conds: list[Condition], schema: pa.Schema, allowed: Collection[str] | None,
                    refused: Collection[str] = ()) -> list[Condition]:
    """Check each condition's field against the schema and the grant, and type its value to the column's.

    A field that is not in the schema -> 400; not in `allowed` (when given) -> 403; in `refused` (masked columns:
    filtering on the original value would reveal the hidden part) -> 403. POSITION_COLUMN is internal and treated
    as absent.
    """
    names = set(schema.names) - {POSITION_COLUMN}
    allowed_set = None if allowed is None else set(allowed)
    refused_set = set(refused)
    out: list[Condition] = []
    for cond in conds:
        field = cond.field
        if field not in names:
            raise GatewayInputError(f"字段 {field} 不存在")
        if allowed_set is not None and field not in allowed_set:
            raise ScopeError(f"未授权字段 {field} 不能用于筛选")
        if field in refused_set:
            raise ScopeError(f"字段 {field} 已脱敏，不能用于筛选（按原值筛选会泄露被隐藏的部分）")
        typ = _value_type(schema.field(field).type)
        if cond.op in NULLARY_OPS:
            out.append(Condition(field, cond.op, None))
            continue
        if cond.op == "prefix" and not _is_string(typ):
            raise GatewayInputError(f"字段 {field} 不是文本列，不能使用 prefix（前缀匹配）")
        if cond.op == "in":
            values = cond.value if isinstance(cond.value, (tuple, list)) else (cond.value,)
            if not values:
                raise GatewayInputError(f"字段 {field} 的 in 条件需要至少一个值")
            out.append(Condition(field, "in", tuple(_coerce(field, typ, v) for v in values)))
        elif cond.op in OPS:
            if cond.value is None or isinstance(cond.value, (tuple, list)):
                raise GatewayInputError(f"字段 {field} 的 {cond.op} 条件需要一个值")
            out.append(Condition(field, cond.op, _coerce(field, typ, cond.value)))
        else:
            raise GatewayInputError(f"字段 {field}：不支持的操作 {_show(cond.op)}，可用的操作为 {_OPS_TEXT}")
    return out


def _condition_expression(cond: Condition) -> pc.Expression:
    f = pc.field(cond.field)
    op, v = cond.op, cond.value
    if op == "eq":
        return f == v
    if op == "ne":
        return f != v
    if op == "lt":
        return f < v
    if op == "le":
        return f <= v
    if op == "gt":
        return f > v
    if op == "ge":
        return f >= v
    if op == "in":
        return f.isin(pa.array(list(v)))
    if op == "prefix":
        return pc.starts_with(f, pattern=v)
    if op == "is_null":
        return f.is_null()
    if op == "not_null":
        return f.is_valid()
    raise GatewayInputError(f"不支持的操作 {_show(op)}")


def to_expression(conds: list[Condition]) -> pc.Expression | None:
    """The AND of all (bound) conditions; None when there are none. Comparisons with null are not true (SQL-like):
    "ne" does not match null values — use is_null for those."""
    expr: pc.Expression | None = None
    for cond in conds:
        part = _condition_expression(cond)
        expr = part if expr is None else (expr & part)
    return expr


# --------------------------------------------------------------------------------------------------------------
# Masking (脱敏)
# --------------------------------------------------------------------------------------------------------------

MASK_KINDS = ("id_number", "mobile", "name", "address", "account", "generic")

_ID_WORDS = ("身份号码", "证件号码", "身份证号")
_PHONE_WORDS = ("手机", "电话")
_ADDRESS_WORDS = ("住址", "地址")
_ACCOUNT_WORDS = ("账号", "卡号")


def mask_kind_for(element_name: str, checks: Collection[str]) -> str:
    """The masking kind for a data element, from its identifier checks and its (Chinese) name."""
    name = element_name or ""
    if "cn_resident_id" in checks or any(w in name for w in _ID_WORDS):
        return "id_number"
    if "cn_mobile" in checks or any(w in name for w in _PHONE_WORDS):
        return "mobile"
    if name.endswith("姓名"):
        return "name"
    if any(w in name for w in _ADDRESS_WORDS):
        return "address"
    if any(w in name for w in _ACCOUNT_WORDS):
        return "account"
    return "generic"


_STAR = pa.scalar("*", pa.string())
_NULL_STRING = pa.scalar(None, pa.string())
# The district-level part of an address: up to the first 区 / 县 / 旗 (市辖区 ends in 区). 区 preceded by 小 / 社 / 园 /
# 校 / 景 is a housing estate, community, park, campus or scenic area, not an administrative district.
_ADDRESS_PREFIX = r"^(?P<p>.*?(?:[^小社园校景]区|县|旗))"
_ADDRESS_FALLBACK_KEEP = 6
# (leading, trailing) characters kept by each kind but address.
_KEEP = {"id_number": (6, 4), "mobile": (3, 4), "name": (1, 0), "account": (0, 4), "generic": (1, 1)}


def _stars(count: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.binary_repeat(_STAR, count)


def _keep_ends(s: Any, head: int, tail: int) -> Any:
    """Keep `head` leading and `tail` trailing characters, '*' for each one between; all '*' when the value is not
    longer than the kept parts (it would leak whole)."""
    length = pc.utf8_length(s)
    parts = []
    if head:
        parts.append(pc.utf8_slice_codeunits(s, 0, head))
    parts.append(_stars(pc.max_element_wise(pc.subtract(length, head + tail), 0)))
    if tail:
        parts.append(pc.utf8_slice_codeunits(s, -tail))
    out = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    short = pc.fill_null(pc.less_equal(length, head + tail), False)
    if pc.any(short).as_py():  # rare: fix just those rows rather than an if_else over the whole column
        out = pc.replace_with_mask(out, short, _stars(pc.filter(length, short)))
    return out


def _keep_ends_ascii(arr: pa.Array, head: int, tail: int) -> pa.Array | None:
    """`_keep_ends` on the bytes, for a column that is pure ASCII (ID numbers, phone numbers, accounts): one
    character is one byte, so the offsets stay and only middle bytes become '*'. ~5-20x faster than the string
    kernels. None when some byte is not ASCII. The result holds only this array's own bytes (a slice's neighbours
    are not carried along) in a fresh buffer."""
    n = len(arr)
    if n == 0:
        return pa.array([], pa.string())
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    base, end = int(offsets[0]), int(offsets[-1])
    if end > base:
        data = np.frombuffer(buffers[2], dtype=np.uint8, count=end - base, offset=base).copy()
    else:
        data = np.zeros(0, dtype=np.uint8)
    if data.size and int(data.max()) >= 0x80:
        return None
    rel = offsets - np.int32(base)
    lengths = np.diff(rel)
    keep = head + tail
    if lengths.min() == lengths.max():  # one length for all (typical of IDs and phone numbers)
        width = int(lengths[0])
        grid = data.reshape(n, width)
        if width > keep:
            grid[:, head:width - tail] = 42
        else:
            grid[:] = 42
    else:
        partial = lengths > keep
        starts = np.where(partial, rel[:-1] + head, rel[:-1])
        ends = np.where(partial, rel[1:] - tail, rel[1:])
        some = starts < ends  # then starts are strictly increasing, and so are ends
        delta = np.zeros(data.size + 1, dtype=np.int8)
        delta[starts[some]] = 1
        delta[ends[some]] -= 1  # an end equal to the next start cancels it: the run goes on
        np.copyto(data, np.uint8(42), where=np.cumsum(delta[:-1], dtype=np.int8).view(np.bool_))
    validity = arr.is_valid().buffers()[1] if arr.null_count else None
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(rel), pa.py_buffer(data)],
                                 null_count=arr.null_count)


def _mask_chunk(arr: pa.Array, kind: str) -> pa.Array:
    if kind == "address":
        return _mask_address(arr)
    head, tail = _KEEP[kind]
    fast = _keep_ends_ascii(arr, head, tail)
    return fast if fast is not None else _keep_ends(arr, head, tail)


def _mask_address(s: Any) -> Any:
    length = pc.utf8_length(s)
    found = pc.extract_regex(s, _ADDRESS_PREFIX)
    district = pc.struct_field(found, "p")
    kept = pc.if_else(pc.is_valid(found), district,
                      pc.if_else(pc.greater(length, _ADDRESS_FALLBACK_KEEP),
                                 pc.utf8_slice_codeunits(s, 0, _ADDRESS_FALLBACK_KEEP), _NULL_STRING))
    masked = pc.binary_join_element_wise(kept, pa.scalar("***"), "")
    # Neither a district nor more than six characters: nothing can be kept without showing it all.
    return pc.if_else(pc.is_valid(kept), masked, _stars(length))


def mask_array(arr: pa.Array | pa.ChunkedArray, kind: str) -> pa.Array | pa.ChunkedArray:
    """Mask every value of a column (string output, nulls stay null); see MASK_KINDS and DOMAIN.md.

    id_number keeps the first 6 and last 4 characters, mobile the first 3 and last 4, name the first character,
    address the part up to the first 区 / 县 / 旗 (else the first 6 characters) followed by '***', account the last
    4, generic the first and last; every other character becomes '*'. A value no longer than what would be kept is
    masked whole.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr = arr.cast(typ.value_type)
        typ = arr.type
    if not pa.types.is_string(typ):
        arr = pc.cast(arr, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        return pa.chunked_array([_mask_chunk(chunk, kind) for chunk in arr.chunks], pa.string())
    return _mask_chunk(arr, kind)


# --------------------------------------------------------------------------------------------------------------
# Scope and view
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnSpec:
    code: str
    mask: str | None  # a MASK_KIND, or None for plain values


OBJECTION_COLUMN = "_objection"
POSITION_COLUMN = "__pos"


def _flat(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _objection_marks(positions: np.ndarray, columns: Sequence[ColumnSpec],
                     objections: Mapping[str, np.ndarray | None] | None) -> pa.Array:
    """Per row: the ','-joined codes of the granted items (in column order) whose open tickets name that row."""
    n = len(positions)
    parts = []
    for spec in columns:
        rows = objections.get(spec.code) if objections else None
        if rows is None:  # no ticket, or the item as a whole is disputed (reported by the caller, not per row)
            continue
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            continue
        hit = np.isin(positions, rows)
        if not hit.any():
            continue
        # "," + code on hit rows, "" elsewhere; joined, the leading ',' is cut. (Not null_handling="skip": in
        # pyarrow 26 it drops all-null rows from the output.)
        parts.append(pc.if_else(pa.array(hit), pa.scalar("," + spec.code), pa.scalar("")))
    if not parts:
        return pa.nulls(n, pa.string())
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    marks = pc.utf8_slice_codeunits(joined, 1)
    return pc.if_else(pc.equal(marks, ""), _NULL_STRING, marks)


def build_scope(table: pa.Table, columns: Sequence[ColumnSpec], row_filter: pc.Expression | None,
                objections: Mapping[str, np.ndarray | None] | None = None) -> pa.Table:
    """The grant's scope of a whole published version, built once and paged many times.

    POSITION_COLUMN (the row index in the version) is added, the row filter applied on the full table (it may use
    ungranted columns), then only the granted columns are kept in the given order, masked where asked, and
    OBJECTION_COLUMN added (see `_objection_marks`). A granted item that this version does not have (items added
    after it was published) is an all-null string column. The result is one chunk per column, in version order.
    """
    codes = [spec.code for spec in columns]
    if len(set(codes)) != len(codes):
        raise ValueError(f"duplicate granted columns: {codes}")
    for reserved in (POSITION_COLUMN, OBJECTION_COLUMN):
        if reserved in codes or reserved in table.column_names:
            raise ValueError(f"column name {reserved!r} is reserved by the gateway")
    work = table.append_column(POSITION_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    if row_filter is not None:
        work = work.filter(row_filter)
    positions = _flat(work.column(POSITION_COLUMN)).to_numpy()
    if positions.size > 1 and bool(np.any(positions[1:] < positions[:-1])):  # keep version order, whatever filter did
        order = np.argsort(positions, kind="stable")
        work = work.take(pa.array(order))
        positions = positions[order]
    arrays: list[pa.Array] = []
    names: list[str] = []
    for spec in columns:
        if spec.code in work.column_names:
            col = _flat(work.column(spec.code))
        else:
            col = pa.nulls(work.num_rows, pa.string())
        if spec.mask is not None:
            col = mask_array(col, spec.mask)
        arrays.append(col)
        names.append(spec.code)
    arrays.append(pa.array(positions, type=pa.int64()))
    names.append(POSITION_COLUMN)
    arrays.append(_objection_marks(positions, columns, objections))
    names.append(OBJECTION_COLUMN)
    return pa.Table.from_arrays(arrays, names=names).combine_chunks()


_DIRECTIONS = ("ascending", "descending")
MAX_SORT_KEYS = 5


def make_view(scope: pa.Table, conds: list[Condition], sort: Sequence[tuple[str, str]]) -> pa.Table:
    """The client's narrowing of the scope: bound conditions ANDed, then sorted with the row position as the last
    key, so the order is total and the same on every request (offset paging never skips or repeats a row)."""
    if not conds and not sort:
        return scope
    names = set(scope.column_names) - {POSITION_COLUMN}
    for cond in conds:
        if cond.field not in names:
            raise GatewayInputError(f"字段 {cond.field} 不存在")
    view = scope
    expr = to_expression(conds)
    if expr is not None:
        view = view.filter(expr)
    keys: list[tuple[str, str]] = []
    for column, direction in sort:
        if column not in names:
            raise GatewayInputError(f"排序字段 {column} 不存在")
        if direction not in _DIRECTIONS:
            raise GatewayInputError(f"排序方向 {_show(direction)} 无效，应为 ascending 或 descending")
        keys.append((column, direction))
    if keys:
        keys.append((POSITION_COLUMN, "ascending"))
        view = view.sort_by(keys)
    elif view.num_rows > 1:
        positions = _flat(view.column(POSITION_COLUMN)).to_numpy()
        if bool(np.any(positions[1:] < positions[:-1])):
            view = view.sort_by([(POSITION_COLUMN, "ascending")])
    return view.combine_chunks()


def parse_sort(param: str | None) -> list[tuple[str, str]]:
    """"a,-b" -> [("a", "ascending"), ("b", "descending")]; a leading '+' is also ascending."""
    if param is None or not param.strip():
        return []
    parts = param.split(",")
    if len(parts) > MAX_SORT_KEYS:
        raise GatewayInputError(f"排序字段最多 {MAX_SORT_KEYS} 个，收到 {len(parts)} 个")
    keys: list[tuple[str, str]] = []
    for part in parts:
        part = part.strip()
        direction = "ascending"
        if part[:1] in ("-", "+"):
            direction = "descending" if part[0] == "-" else "ascending"
            part = part[1:].strip()
        if not part:
            raise GatewayInputError(f"排序参数 {_show(param)} 含有空的字段名（格式如 a,-b，- 表示降序）")
        if len(part) > MAX_FIELD_CHARS:
            raise GatewayInputError("排序字段名过长")
        if any(name == part for name, _ in keys):
            raise GatewayInputError(f"排序字段 {part} 重复")
        keys.append((part, direction))
    return keys


# --------------------------------------------------------------------------------------------------------------
# Cursors
# --------------------------------------------------------------------------------------------------------------

MAX_CURSOR_CHARS = 512
_SIG_BYTES = 16
_SIG_CHARS = 22  # urlsafe base64 of 16 bytes, unpadded
_B64_RE = re.compile(r"[A-Za-z0-9_-]+")


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if len(text) % 4 == 1 or not _B64_RE.fullmatch(text):
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return _b64e(hmac.digest(secret, body.encode("ascii"), "sha256")[:_SIG_BYTES])  # one-shot: 3.7 → 2.6 µs


def encode_cursor(secret: bytes, payload: dict) -> str:
    """urlsafe base64 (unpadded) of orjson(payload), '.', and a truncated HMAC-SHA256 of that text."""
    if not secret:
        raise ValueError("cursor secret must not be empty")
    if not isinstance(payload, dict):
        raise TypeError("cursor payload must be a dict")
    body = _b64e(orjson.dumps(payload))
    cursor = f"{body}.{_sign(secret, body)}"
    if len(cursor) > MAX_CURSOR_CHARS:
        raise ValueError(f"cursor payload too large ({len(cursor)} > {MAX_CURSOR_CHARS} characters)")
    return cursor


def decode_cursor(secret: bytes, cursor: str) -> dict:
    """The payload of a cursor this server signed; GatewayInputError for anything else."""
    if not secret:
        raise ValueError("cursor secret must not be empty")
    invalid = "游标无效：游标已损坏、被改动或不属于本次查询，请去掉 cursor 从第一页重新请求"
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise GatewayInputError(invalid)
    body, dot, sig = cursor.partition(".")
    if not dot or not body or len(sig) != _SIG_CHARS or not _B64_RE.fullmatch(body) or not _B64_RE.fullmatch(sig):
        raise GatewayInputError(invalid)
    if not hmac.compare_digest(sig, _sign(secret, body)):
        raise GatewayInputError(invalid)
    try:
        payload = orjson.loads(_b64d(body))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise GatewayInputError(invalid) from None
    if not isinstance(payload, dict):
        raise GatewayInputError(invalid)
    if "o" in payload:
        offset = payload["o"]
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise GatewayInputError("游标无效：偏移量必须是非负整数，请去掉 cursor 从第一页重新请求")
    return payload


# --------------------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------------------

def output_table(view_slice: pa.Table) -> pa.Table:
    """What the consumer sees: the slice without the internal row position (OBJECTION_COLUMN stays)."""
    pos = view_slice.schema.get_field_index(POSITION_COLUMN)
    return view_slice.remove_column(pos) if pos >= 0 else view_slice


def _patch_nulls(values: list, arr: pa.Array) -> list:
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(~valid).tolist():
            values[i] = None
    return values


_OFFSET_RE = r"([+-][0-9]{2})([0-9]{2})$"  # strftime's %z gives +0800; ISO 8601 extended wants +08:00


def _plain(arr: pa.Array) -> list:
    return arr.to_pylist()


def _numbers(arr: pa.Array) -> list:
    if arr.null_count:
        filler = False if arr.type.id == _BOOL_ID else 0
        return _patch_nulls(pc.fill_null(arr, filler).to_numpy(zero_copy_only=False).tolist(), arr)
    return arr.to_numpy(zero_copy_only=False).tolist()


def _floats(arr: pa.Array) -> list:
    return arr.to_numpy(zero_copy_only=False).tolist()  # nulls come out as NaN, which orjson writes as null


def _temporal(values: np.ndarray, arr: pa.Array) -> list:
    """datetime64 values as date / datetime objects (None for NaT), which orjson writes as YYYY-MM-DD / ISO 8601
    natively; numpy's own ISO strings when some value is outside Python's years 1 to 9999 (.tolist() gives ints)."""
    out = values.tolist()
    if int in set(map(type, out)):
        return _patch_nulls(np.datetime_as_string(values).tolist(), arr)
    return out


def _dates(arr: pa.Array) -> list:
    if arr.type.id != _DATE32_ID:
        arr = arr.cast(pa.date32())
    return _temporal(arr.to_numpy(zero_copy_only=False), arr)


def _timestamps(arr: pa.Array) -> list:
    typ = arr.type
    if typ.tz is not None:  # local time in the column's zone, with its offset
        text = pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S%z")
        return pc.replace_substring_regex(text, _OFFSET_RE, r"\1:\2").to_pylist()
    values = arr.to_numpy(zero_copy_only=False)
    if typ.unit == "ns":  # .tolist() would give integers: Python's datetime stops at microseconds
        return _patch_nulls(np.datetime_as_string(values).tolist(), arr)
    return _temporal(values, arr)


def _as_text(arr: pa.Array) -> list:
    return arr.cast(pa.string()).to_pylist()


def _dictionary(arr: pa.Array) -> list:
    return _json_values(arr.dictionary_decode())


def _nulls(arr: pa.Array) -> list:
    return [None] * len(arr)


_BOOL_ID = pa.bool_().id
_DATE32_ID = pa.date32().id
_CONVERTERS = {
    **{t.id: _numbers for t in (pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(),
                                pa.uint32(), pa.uint64())},
    **{t.id: _floats for t in (pa.float16(), pa.float32(), pa.float64())},
    **{t.id: _plain for t in (pa.string(), pa.large_string())},
    **{t.id: _dates for t in (pa.date32(), pa.date64())},
    pa.timestamp("s").id: _timestamps,
    **{t.id: _as_text for t in (pa.decimal128(1, 0), pa.decimal256(1, 0), pa.time32("s"), pa.time64("us"),
                                pa.duration("s"))},
    pa.dictionary(pa.int32(), pa.string()).id: _dictionary,
    pa.null().id: _nulls,
}


def _json_values(col: pa.Array | pa.ChunkedArray) -> list:
    """One column as a list of JSON-ready Python values (numpy paths: to_pylist on dates is ~20x slower)."""
    arr = col.chunk(0) if type(col) is pa.ChunkedArray and col.num_chunks == 1 else _flat(col)
    return _CONVERTERS.get(arr.type.id, _plain)(arr)


@functools.lru_cache(maxsize=256)
def _row_builder(names: tuple[str, ...]):
    """A function building the row dicts of these columns with a constant-key dict display: about 2.5x as fast as
    dict(zip(...)). Column names enter the generated source only as repr() of a str, which is always a plain string
    literal that evaluates back to the same string; nothing else in the source comes from data."""
    if not all(type(name) is str for name in names):
        raise TypeError("column names must be str")
    width = len(names)
    cols = "".join(f"c{i}, " for i in range(width))
    vals = "".join(f"v{i}, " for i in range(width))
    body = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    source = (f"def build(columns):\n"
              f"    ({cols}) = columns\n"
              f"    return [{{{body}}} for ({vals}) in zip({cols})]\n")
    scope: dict[str, Any] = {}
    exec(compile(source, "<page_json rows>", "exec"), scope)  # noqa: S102 - see the docstring
    return scope["build"]


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def page_json(table: pa.Table, meta: dict) -> bytes:
    """orjson bytes of {**meta, "rows": [{column: value, ...}, ...]}: dates as YYYY-MM-DD, timestamps ISO 8601,
    decimals as strings, nulls as null."""
    table = output_table(table)
    names = tuple(table.schema.names)
    if not names:
        rows: list[dict] = [{} for _ in range(table.num_rows)]
    else:
        rows = _row_builder(names)([_json_values(col) for col in table.columns])
    return orjson.dumps({**meta, "rows": rows}, default=_json_default)


# --- JSON rows encoded with Arrow kernels, a block of rows at a time -------------------------------------------------
# page_json builds Python objects for every value (~1.2 µs a row in 100-row pages, two thirds of a direct page's
# CPU). For paging through a view, its rows' JSON text is made with Arrow's string kernels over a block of rows
# (~0.5 µs a row, bench/gateway.py), each literal byte for byte what orjson writes for the value page_json gives:
# `tests/test_gateway_engine.py` compares the two on every type the gateway serves.

_DAY_RANGE = ((dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days, (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days)
_INTEGER_IDS = {t.id for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
                               pa.uint64())}
_STRING_ID = pa.string().id


def _string_needs_escape(arr: pa.Array) -> bool:
    """Whether any byte of the string array's values is one JSON escapes (control characters, '"', '\\'); orjson
    writes everything else, non-ASCII included, as it is."""
    offsets = np.frombuffer(arr.buffers()[1], np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    data = arr.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return False
    seg = np.frombuffer(data, np.uint8)[offsets[0]:offsets[-1]]
    return bool((seg < 0x20).any() or (seg == 0x22).any() or (seg == 0x5C).any())


def _quoted(arr: pa.Array) -> pa.Array:
    return pc.fill_null(pc.binary_join_element_wise('"', arr, '"', ""), "null")


def _each_literal(arr: pa.Array) -> tuple[str, Any]:
    """The general case: each value's literal by orjson, one call per value."""
    dumps = orjson.dumps
    return "raw", pa.array([dumps(v, default=_json_default) for v in _json_values(arr)], pa.string())


def _literals_with_commas(arr: pa.Array) -> tuple[str, Any]:
    """One orjson call for the whole column, cut at its commas: each value's literal followed by ','. Exact only when
    no literal contains a comma, which holds iff the text has exactly one comma per value (each literal adds one
    separator plus its own commas); otherwise each value is encoded on its own."""
    text = bytearray(orjson.dumps(_json_values(arr), default=_json_default))
    del text[0]
    text[-1] = 0x2C  # "a,b,c]" → "a,b,c,"
    commas = np.flatnonzero(np.frombuffer(text, np.uint8) == 0x2C)
    if len(commas) != len(arr):
        return _each_literal(arr)
    offsets = np.empty(len(arr) + 1, np.int32)
    offsets[0] = 0
    offsets[1:] = commas + 1
    return "comma", pa.Array.from_buffers(pa.string(), len(arr), [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def _column_literals(arr: pa.Array) -> tuple[str, Any]:
    """How one column enters its rows' JSON text: ("const", text) the same literal on every row; ("quoted", array) a
    string's content, to be put in quotes; ("raw", array) each row's literal; ("comma", array) each row's literal and a
    ',' after it."""
    n = len(arr)
    if arr.null_count == n:
        return "const", "null"
    type_id = arr.type.id
    if type_id == pa.large_string().id and arr.nbytes < 2**30:
        arr, type_id = arr.cast(pa.string()), _STRING_ID
    if type_id == _STRING_ID:
        if _string_needs_escape(arr):
            return _each_literal(arr)
        return ("raw", _quoted(arr)) if arr.null_count else ("quoted", arr)
    if type_id in _INTEGER_IDS:
        return "raw", pc.fill_null(arr.cast(pa.string()), "null")
    if type_id == _BOOL_ID:
        return "raw", pc.fill_null(pc.if_else(arr, "true", "false"), "null")
    if type_id == _DATE32_ID:
        days = pc.min_max(arr.view(pa.int32()))
        if _DAY_RANGE[0] <= days["min"].as_py() and days["max"].as_py() <= _DAY_RANGE[1]:  # Python's years 1-9999
            text = arr.cast(pa.string())  # YYYY-MM-DD, as orjson writes a date
            return ("raw", _quoted(text)) if arr.null_count else ("quoted", text)
    if isinstance(arr, pa.DictionaryArray):
        return _column_literals(arr.dictionary_decode())
    return _literals_with_commas(arr)


def json_rows(table: pa.Table) -> tuple[np.ndarray, bytes | pa.Buffer]:
    """Each row of `table` as the JSON object page_json would write for it, followed by ',': returns the n+1 offsets
    (row i is text[offsets[i]:offsets[i + 1]]) and the text."""
    table = output_table(table)
    n = table.num_rows
    if n == 0:
        return np.zeros(1, np.int32), b""
    parts: list[Any] = []
    text = "{"
    after_comma = True  # the previous literal brought its own ',' (or there is none yet)
    names = table.schema.names
    for i, name in enumerate(names):
        column = _flat(table.column(i))
        kind, value = _column_literals(column)
        if kind == "comma" and i == len(names) - 1:  # the last value is followed by '}', not ','
            kind, value = _each_literal(column)
        text += ("" if after_comma else ",") + orjson.dumps(name).decode() + ":"
        after_comma = kind == "comma"
        if kind == "const":
            text += value
        elif kind == "quoted":
            parts += [text + '"', value]
            text = '"'
        else:
            parts += [text, value]
            text = ""
    text += "},"
    if not parts:  # every row the same
        row = text.encode()
        return np.arange(n + 1, dtype=np.int64) * len(row), row * n
    joined = pc.binary_join_element_wise(*parts, text, "")
    return np.frombuffer(joined.buffers()[1], np.int32, count=n + 1, offset=joined.offset * 4), joined.buffers()[2]


class JsonRowBlocks:
    """The JSON text of a view's rows, for paging: encoded by `json_rows` a block of rows at a time, the last `keep`
    blocks kept, so a consumer paging through a view reads a block's pages from one encoding. Blocks are small
    (`block_bytes` of Arrow data, at most `block_rows` rows): a block pays for itself within one pass."""

    def __init__(self, table: pa.Table, block_rows: int = 4000, block_bytes: int = 1 << 20, keep: int = 4):
        self.table = table
        per_row = max(1, table.nbytes // max(1, table.num_rows))
        self.block_rows = max(1, min(block_rows, block_bytes // per_row))
        self.keep = keep
        self._blocks: OrderedDict[int, tuple[np.ndarray, bytes | pa.Buffer]] = OrderedDict()
        self._lock = threading.Lock()

    def _block(self, index: int) -> tuple[np.ndarray, bytes | pa.Buffer]:
        with self._lock:
            hit = self._blocks.get(index)
            if hit is not None:
                self._blocks.move_to_end(index)
                return hit
        built = json_rows(self.table.slice(index * self.block_rows, self.block_rows))
        with self._lock:
            self._blocks[index] = built
            while len(self._blocks) > self.keep:
                self._blocks.popitem(last=False)
        return built

    def text(self, offset: int, count: int) -> bytes:
        """Rows offset … offset+count-1 as JSON objects separated by ',' (what goes between a page's [ and ])."""
        end = min(offset + count, self.table.num_rows)
        if offset >= end:
            return b""
        pieces = []
        at = offset
        while at < end:
            index = at // self.block_rows
            first = index * self.block_rows
            offsets, data = self._block(index)
            stop = min(end, first + self.block_rows)
            # The last row's ',' stays out.
            pieces.append(memoryview(data)[offsets[at - first]:offsets[stop - first] - (stop == end)])
            at = stop
        return b"".join(pieces)


def page_json_with_rows(rows: bytes, meta: dict) -> bytes:
    """The bytes of page_json(table, meta) given its rows' text from JsonRowBlocks.text; `meta` has no "rows"."""
    if "rows" in meta:
        raise ValueError('meta must not hold "rows"')
    head = orjson.dumps(meta, default=_json_default)
    return (head[:-1] + b',"rows":[' if meta else b'{"rows":[') + rows + b"]}"


def to_csv(table: pa.Table, bom: bool = False) -> bytes:
    """UTF-8 CSV with a header row (a BOM first when asked, for spreadsheet programs)."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(output_table(table), sink)
    data = sink.getvalue().to_pybytes()
    return b"\xef\xbb\xbf" + data if bom else data


def to_arrow_stream(table: pa.Table, batch_rows: int = 65536) -> memoryview:
    """Arrow IPC stream format in one Arrow buffer: the schema message, record batches of at most `batch_rows`, the
    end-of-stream marker. Returned as a view of that buffer (no copy to `bytes`): writing through a BytesIO and
    streaming the pieces cost ~4× more per scope (bench/gateway.py), and the response-size ceiling bounds it."""
    table = output_table(table)
    chunk = max(1, batch_rows)
    # Measured first (no bytes are copied), then written once into a buffer of exactly that size: a growing buffer
    # reallocated and copied its way up (1.4 → 0.9 ms for a 7 MB scope, bench/gateway.py).
    measure = pa.MockOutputStream()
    with pa.ipc.new_stream(measure, table.schema) as writer:
        writer.write_table(table, max_chunksize=chunk)
    buffer = pa.allocate_buffer(measure.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buffer), table.schema) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return memoryview(buffer)


def to_parquet(table: pa.Table) -> bytes:
    """A Parquet file (zstd) of the table."""
    sink = pa.BufferOutputStream()
    pq.write_table(output_table(table), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
