"""The sharing gateway's data side (sharing/engine.py): conditions, masking, scope, views, cursors and encoders.

Pure pyarrow / numpy: no database, no HTTP.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import hmac
import io
import random

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from catalog.errors import DomainError
from sharing.engine import (
    MASK_KINDS,
    OBJECTION_COLUMN,
    OPS,
    POSITION_COLUMN,
    ColumnSpec,
    Condition,
    GatewayInputError,
    JsonRowBlocks,
    ScopeError,
    to_arrow_stream,
    bind_conditions,
    build_scope,
    decode_cursor,
    encode_cursor,
    make_view,
    mask_array,
    mask_kind_for,
    output_table,
    page_json,
    page_json_with_rows,
    parse_conditions,
    parse_filter_params,
    parse_sort,
    to_csv,
    to_expression,
    to_parquet,
)

SECRET = b"test-cursor-secret"


# --- masking ------------------------------------------------------------------------------------------------------

def masked(values, kind):
    out = mask_array(pa.array(values, pa.string()), kind)
    assert out.type == pa.string()
    return out.to_pylist()


def test_mask_id_number():
    assert masked(["110101199003071234", "11010519491231002X", "110101900307123", None, ""], "id_number") == [
        "110101********1234", "110105********002X", "110101*****7123", None, ""]
    # Not longer than the kept 6 + 4: masked whole, nothing of it shown.
    assert masked(["1101011990", "11010", "1"], "id_number") == ["**********", "*****", "*"]
    assert masked(["11010119900"], "id_number") == ["110101*9900"]


def test_mask_mobile():
    assert masked(["13800138000", "0571-88886666", None], "mobile") == ["138****8000", "057******6666", None]
    assert masked(["1380013", "138"], "mobile") == ["*******", "***"]


def test_mask_name():
    assert masked(["张三丰", "李四", "欧阳娜娜", "张", "", None], "name") == ["张**", "李*", "欧***", "*", "", None]


def test_mask_address():
    assert masked(["浙江省杭州市西湖区文三路90号", "北京市市辖区东城区景山前街4号", "云南省昆明市呈贡县某村5组",
                   "内蒙古自治区呼伦贝尔市鄂温克族自治旗巴彦托海镇", None], "address") == [
        "浙江省杭州市西湖区***", "北京市市辖区***", "云南省昆明市呈贡县***",
        "内蒙古自治区***", None]
    # No district: the first 6 characters; 小区 / 社区 are not districts.
    assert masked(["杭州市文三路阳光小区3幢2单元", "某某街道幸福社区12号楼"], "address") == [
        "杭州市文三路***", "某某街道幸福***"]
    # No district and too short to keep 6 characters of: masked whole.
    assert masked(["文三路90号", "某路1号", ""], "address") == ["******", "****", ""]


def test_mask_account():
    assert masked(["6222021234567890123", "12345", "1234", "12", None], "account") == [
        "***************0123", "*2345", "****", "**", None]


def test_mask_generic():
    assert masked(["统一社会信用代码", "abc", "ab", "a", "", None], "generic") == [
        "统******码", "a*c", "**", "*", "", None]


KEEP = {"id_number": (6, 4), "mobile": (3, 4), "name": (1, 0), "account": (0, 4), "generic": (1, 1)}


def reference_mask(value: str | None, kind: str) -> str | None:
    if value is None:
        return None
    head, tail = KEEP[kind]
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail:]


@pytest.mark.parametrize("alphabet", ["0123456789X张王李赵abc号路", "0123456789X"])  # mixed and pure ASCII paths
@pytest.mark.parametrize("kind", sorted(KEEP))
def test_mask_never_shows_the_middle(kind, alphabet):
    """Random values of every length: the output has the input's length, the kept ends are the input's, every
    other character is '*', and a value no longer than the kept parts comes out all '*'."""
    rng = random.Random(kind + alphabet)
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25))) for _ in range(500)] + [None]
    expected = [reference_mask(v, kind) for v in values]
    assert masked(values, kind) == expected
    # Slices (non-zero offset) and chunks give the same.
    arr = pa.array(values, pa.string())
    part = mask_array(arr.slice(100, 50), kind)
    part.validate(full=True)
    assert part.to_pylist() == expected[100:150]
    chunked = mask_array(pa.chunked_array([arr.slice(0, 200), arr.slice(200)]), kind)
    assert chunked.to_pylist() == expected


@pytest.mark.parametrize("kind", sorted(KEEP))
def test_mask_same_length_values(kind):
    """All values of one length (the shape of ID and phone numbers), with and without nulls, short or long."""
    for width in (0, 1, 4, 5, 11, 18):
        values = [f"{i:0{width}d}"[-width:] if width else "" for i in range(20)]
        assert masked(values, kind) == [reference_mask(v, kind) for v in values]
        with_null = values[:5] + [None] + values[5:]
        assert masked(with_null, kind) == [reference_mask(v, kind) for v in with_null]
    ids = pa.array(["110101199003071234"] * 3 + ["330106198512120011"])
    out = mask_array(ids.slice(2, 2), kind)
    out.validate(full=True)
    assert out.to_pylist() == [reference_mask(v, kind) for v in ids.slice(2, 2).to_pylist()]
    # The buffer behind the result holds nothing of the rows outside the slice.
    assert b"1990" not in out.buffers()[2].to_pybytes()
    assert mask_array(pa.array([], pa.string()), kind).to_pylist() == []
    assert mask_array(pa.array([None, None], pa.string()), kind).to_pylist() == [None, None]


def test_mask_non_string_and_chunked_input():
    ints = pa.chunked_array([[6222021234567890, None], [1234567]])
    out = mask_array(ints, "account")
    assert isinstance(out, pa.ChunkedArray) and out.type == pa.string()
    assert out.to_pylist() == ["************7890", None, "***4567"]
    dates = pa.array([dt.date(1990, 3, 7), None])
    assert mask_array(dates, "generic").to_pylist() == ["1********7", None]
    assert mask_array(pa.array(["张三丰"], pa.large_string()), "name").to_pylist() == ["张**"]
    assert mask_array(pa.array(["张三丰", "张三丰"]).dictionary_encode(), "name").to_pylist() == ["张**", "张**"]
    assert mask_array(pa.chunked_array([], pa.string()), "address").to_pylist() == []
    assert mask_array(pa.nulls(2), "mobile").to_pylist() == [None, None]
    with pytest.raises(ValueError):
        mask_array(pa.array(["x"]), "everything")


def test_mask_kind_for():
    assert mask_kind_for("公民身份号码", []) == "id_number"
    assert mask_kind_for("法定代表人证件号码", []) == "id_number"
    assert mask_kind_for("号码", ["cn_resident_id"]) == "id_number"
    assert mask_kind_for("联系人手机号码", []) == "mobile"
    assert mask_kind_for("联系电话", []) == "mobile"
    assert mask_kind_for("号码", ["cn_mobile"]) == "mobile"
    assert mask_kind_for("姓名", []) == "name"
    assert mask_kind_for("法定代表人姓名", []) == "name"
    assert mask_kind_for("户籍地址", []) == "address"
    assert mask_kind_for("现住址", []) == "address"
    assert mask_kind_for("银行账号", []) == "account"
    assert mask_kind_for("社会保障卡号", []) == "account"
    assert mask_kind_for("企业名称", []) == "generic"
    assert set(MASK_KINDS) == {"id_number", "mobile", "name", "address", "account", "generic"}


# --- conditions ---------------------------------------------------------------------------------------------------

def test_errors_are_domain_errors_with_http_status():
    assert issubclass(GatewayInputError, DomainError) and issubclass(ScopeError, DomainError)
    assert (GatewayInputError.status_code, GatewayInputError.error) == (400, "invalid_request")
    assert (ScopeError.status_code, ScopeError.error) == (403, "insufficient_scope")
    assert OPS == ("eq", "ne", "lt", "le", "gt", "ge", "in", "prefix", "is_null", "not_null")


def test_parse_conditions():
    raw = [{"field": "district", "op": "in", "value": ["330106", "330108"]},
           {"field": "age", "op": "ge", "value": 18},
           {"field": "closed", "op": "is_null"},
           {"field": "note", "op": "not_null", "value": None}]
    assert parse_conditions(raw) == [Condition("district", "in", ("330106", "330108")), Condition("age", "ge", 18),
                                     Condition("closed", "is_null"), Condition("note", "not_null")]
    assert parse_conditions([]) == [] and parse_conditions(None) == []


@pytest.mark.parametrize("raw, words", [
    ({"field": "a", "op": "eq", "value": 1}, "列表"),
    (["a:eq:1"], "对象"),
    ([{"op": "eq", "value": 1}], "field"),
    ([{"field": "a", "value": 1}], "op"),
    ([{"field": "a", "op": "like", "value": "x"}], "like"),
    ([{"field": "a", "op": "in", "value": []}], "in"),
    ([{"field": "a", "op": "in", "value": "x"}], "in"),
    ([{"field": "a", "op": "eq", "value": 1, "or": True}], "or"),
    ([{"field": "a", "op": "eq"}], "需要一个值"),
    ([{"field": "a", "op": "eq", "value": {"$ne": 1}}], "筛选值"),
    ([{"field": "a", "op": "eq", "value": float("nan")}], "有限"),
    ([{"field": "a", "op": "is_null", "value": 1}], "is_null"),
    ([{"field": "", "op": "eq", "value": 1}], "字段名"),
    ([{"field": "a", "op": "eq", "value": 1}] * 21, "最多 20"),
])
def test_parse_conditions_refuses(raw, words):
    with pytest.raises(GatewayInputError) as err:
        parse_conditions(raw)
    assert words in err.value.message


def test_parse_filter_params():
    assert parse_filter_params(["district:eq:330106", "ts:ge:2024-05-01T08:30:00", "kind:in:a|b|c:d",
                                "closed:is_null", "name:prefix:张", "q:eq:1 OR 1=1"]) == [
        Condition("district", "eq", "330106"), Condition("ts", "ge", "2024-05-01T08:30:00"),
        Condition("kind", "in", ("a", "b", "c:d")), Condition("closed", "is_null"),
        Condition("name", "prefix", "张"), Condition("q", "eq", "1 OR 1=1")]
    assert parse_filter_params([]) == []


@pytest.mark.parametrize("param", ["", "   ", "district", "district:", ":eq:1", "district:like:1", "district:eq:",
                                   "district:in:a||b", "district:in:", "closed:is_null:1", "district:OR:1"])
def test_parse_filter_params_refuses(param):
    with pytest.raises(GatewayInputError):
        parse_filter_params([param])


def test_parse_filter_params_at_most_20():
    with pytest.raises(GatewayInputError, match="最多 20"):
        parse_filter_params(["a:eq:1"] * 21)


SCHEMA = pa.schema([("s", pa.string()), ("i", pa.int64()), ("small", pa.int8()), ("f", pa.float64()),
                    ("d", pa.decimal128(10, 2)), ("day", pa.date32()), ("ts", pa.timestamp("s")),
                    ("tz", pa.timestamp("s", tz="Asia/Shanghai")), ("b", pa.bool_()), ("secret", pa.string()),
                    ("masked", pa.string())])


def bind(params, allowed=None, refused=()):
    return bind_conditions(parse_filter_params(params), SCHEMA, allowed, refused)


def test_bind_coerces_to_column_types():
    conds = bind(["s:eq:12", "i:ge:-5", "f:lt:1.5", "d:le:3.25", "day:ge:2024-02-29", "ts:gt:2024-05-01T08:30:00",
                  "ts:le:2024-05-01", "tz:lt:2024-05-01T08:00:00", "b:eq:TRUE", "b:ne:0", "i:in:1|2|3",
                  "day:in:2024-01-01|2024-01-02", "s:is_null", "f:ge:1e3"])
    values = [c.value for c in conds]
    assert values == ["12", -5, 1.5, decimal.Decimal("3.25"), dt.date(2024, 2, 29), dt.datetime(2024, 5, 1, 8, 30),
                      dt.datetime(2024, 5, 1), dt.datetime(2024, 5, 1, 0, 0, tzinfo=dt.timezone.utc), True, False,
                      (1, 2, 3), (dt.date(2024, 1, 1), dt.date(2024, 1, 2)), None, 1000.0]
    # Stored JSON values keep their meaning.
    stored = bind_conditions(parse_conditions([{"field": "s", "op": "eq", "value": 330106},
                                               {"field": "i", "op": "eq", "value": 7.0},
                                               {"field": "b", "op": "eq", "value": True}]), SCHEMA, None)
    assert [c.value for c in stored] == ["330106", 7, True]


@pytest.mark.parametrize("param, field, value", [
    ("i:eq:1 OR 1=1", "i", "1 OR 1=1"), ("i:eq:1.5", "i", "1.5"), ("i:eq:0x10", "i", "0x10"),
    ("small:eq:300", "small", "300"), ("f:gt:abc", "f", "abc"), ("f:gt:nan", "f", "nan"), ("d:eq:1,5", "d", "1,5"),
    ("day:eq:2024-02-30", "day", "2024-02-30"), ("day:eq:20240101", "day", "20240101"),
    ("ts:eq:yesterday", "ts", "yesterday"), ("ts:eq:2024-05-01T08:00:00+08:00", "ts", "2024-05-01T08:00:00+08:00"),
    ("b:eq:yes", "b", "yes"), ("i:in:1|x", "i", "x"),
])
def test_bind_refuses_values_that_do_not_fit(param, field, value):
    with pytest.raises(GatewayInputError) as err:
        bind([param])
    assert field in err.value.message and value in err.value.message


def test_bind_refuses_unknown_ungranted_and_masked_fields():
    with pytest.raises(GatewayInputError, match="字段 nope 不存在"):
        bind(["nope:eq:1"])
    with pytest.raises(GatewayInputError, match="不存在"):
        bind([f"{POSITION_COLUMN}:eq:1"])  # internal
    with pytest.raises(ScopeError, match="未授权字段 secret 不能用于筛选"):
        bind(["secret:eq:x"], allowed=["s", "i", "masked"])
    with pytest.raises(ScopeError, match="masked"):
        bind(["masked:prefix:110101"], allowed=["s", "masked"], refused=["masked"])
    with pytest.raises(ScopeError):
        bind(["masked:is_null"], allowed=["s", "masked"], refused=["masked"])
    with pytest.raises(GatewayInputError, match="prefix"):
        bind(["i:prefix:1"])
    assert bind(["s:eq:x"], allowed=["s"], refused=["masked"]) == [Condition("s", "eq", "x")]


def people() -> pa.Table:
    return pa.table({
        "sfzhm": ["110101199003071234", "110101' OR '1'='1", "330106198512120011", None, "1 OR 1=1"],
        "age": pa.array([34, 20, 39, None, 1], pa.int64()),
        "score": [1.5, None, 3.0, 4.0, 0.5],
        "born": pa.array([dt.date(1990, 3, 7), None, dt.date(1985, 12, 12), dt.date(2000, 1, 1), dt.date(2001, 1, 1)]),
        "seen": pa.array([dt.datetime(2024, 5, 1, 8), dt.datetime(2024, 5, 1, 9), None, dt.datetime(2024, 5, 2),
                          dt.datetime(2023, 1, 1)], pa.timestamp("s")),
        "active": [True, False, None, True, False],
    })


def matching(table: pa.Table, params: list[str]) -> list[int]:
    expr = to_expression(bind_conditions(parse_filter_params(params), table.schema, None))
    return table.filter(expr).column("age").to_pylist()


def test_every_op_filters():
    t = people()
    assert to_expression([]) is None
    assert matching(t, ["age:eq:20"]) == [20]
    assert matching(t, ["age:ne:20"]) == [34, 39, 1]  # null is not "not equal" (use is_null)
    assert matching(t, ["age:lt:34"]) == [20, 1]
    assert matching(t, ["age:le:34"]) == [34, 20, 1]
    assert matching(t, ["age:gt:34"]) == [39]
    assert matching(t, ["age:ge:34"]) == [34, 39]
    assert matching(t, ["age:in:1|39|77"]) == [39, 1]
    assert matching(t, ["sfzhm:prefix:110101"]) == [34, 20]
    assert matching(t, ["age:is_null"]) == [None]
    assert matching(t, ["score:not_null", "age:not_null"]) == [34, 39, 1]
    assert matching(t, ["born:ge:1990-01-01"]) == [34, None, 1]
    assert matching(t, ["seen:ge:2024-05-01T08:30:00", "seen:lt:2024-05-02"]) == [20]
    assert matching(t, ["seen:in:2024-05-01T08:00:00|2023-01-01T00:00:00"]) == [34, 1]
    assert matching(t, ["active:eq:true"]) == [34, None]
    assert matching(t, ["score:gt:1", "active:eq:1"]) == [34, None]


def test_injection_values_are_literals():
    t = people()
    # The literal strings exist in the data only where they were stored verbatim; nothing else matches.
    assert matching(t, ["sfzhm:eq:110101' OR '1'='1"]) == [20]
    assert matching(t, ["sfzhm:eq:110101199003071234' OR '1'='1"]) == []
    assert matching(t, ["sfzhm:eq:x OR 1=1"]) == []
    assert matching(t, ["sfzhm:in:1 OR 1=1|' OR ''='"]) == [1]
    assert matching(t, ["sfzhm:prefix:' OR 1=1 --"]) == []
    assert matching(t, ["sfzhm:eq:.*"]) == [] and matching(t, ["sfzhm:prefix:.*"]) == []
    with pytest.raises(GatewayInputError, match="age"):
        matching(t, ["age:eq:1 OR 1=1"])
    # A stored row filter cannot be widened by a condition: conditions are ANDed.
    expr = to_expression(bind_conditions(parse_conditions([{"field": "age", "op": "lt", "value": 30}]), t.schema, None)
                         + bind_conditions(parse_filter_params(["sfzhm:eq:1 OR 1=1"]), t.schema, None))
    assert t.filter(expr).column("age").to_pylist() == [1]


def test_timestamp_with_zone():
    t = pa.table({"at": pa.array([dt.datetime(2024, 5, 1, 0, 0), dt.datetime(2024, 5, 1, 1, 0)],
                                 pa.timestamp("s", tz="Asia/Shanghai"))})  # UTC instants: 08:00 and 09:00 local
    conds = bind_conditions(parse_filter_params(["at:ge:2024-05-01T08:30:00"]), t.schema, None)  # local time
    assert t.filter(to_expression(conds)).num_rows == 1
    conds = bind_conditions(parse_filter_params(["at:in:2024-05-01T00:00:00Z|2024-05-01T09:00:00+08:00"]), t.schema,
                            None)
    assert t.filter(to_expression(conds)).num_rows == 2


# --- scope --------------------------------------------------------------------------------------------------------

SECRETS = ("SECRET-甲", "SECRET-乙", "SECRET-丙", "SECRET-丁", "SECRET-戊", "SECRET-己")


def version_table() -> pa.Table:
    """A published version: `district` and `secret` are never granted; `sfzhm` and `xm` are granted masked."""
    return pa.table({
        "sfzhm": ["110101199003071234", "330106198512120011", "330108197001010022", "330106200002020033",
                  "110105195505050044", "330106199909090055"],
        "xm": ["张三丰", "李四", "王五", "赵六", "钱七", "孙八"],
        "district": ["110101", "330106", "330108", "330106", "110105", "330106"],
        "secret": list(SECRETS),
        "amount": pa.array([100, 200, None, 400, 500, 600], pa.int64()),
        "born": pa.array([dt.date(1990, 3, 7), dt.date(1985, 12, 12), dt.date(1970, 1, 1), None,
                          dt.date(1955, 5, 5), dt.date(1999, 9, 9)]),
    })


GRANT = [ColumnSpec("amount", None), ColumnSpec("sfzhm", "id_number"), ColumnSpec("xm", "name"),
         ColumnSpec("born", None)]


def zhejiang_filter(table: pa.Table) -> pc.Expression:
    conds = bind_conditions(parse_conditions([{"field": "district", "op": "prefix", "value": "3301"},
                                              {"field": "secret", "op": "ne", "value": "SECRET-丁"}]),
                            table.schema, None)
    return to_expression(conds)


def test_build_scope_keeps_only_granted_columns_and_rows():
    table = version_table()
    scope = build_scope(table, GRANT, zhejiang_filter(table))
    assert scope.column_names == ["amount", "sfzhm", "xm", "born", POSITION_COLUMN, OBJECTION_COLUMN]
    assert scope.column(POSITION_COLUMN).to_pylist() == [1, 2, 5]
    assert scope.column("amount").to_pylist() == [200, None, 600]
    assert scope.column("sfzhm").to_pylist() == ["330106********0011", "330108********0022", "330106********0055"]
    assert scope.column("xm").to_pylist() == ["李*", "王*", "孙*"]
    assert scope.column(OBJECTION_COLUMN).to_pylist() == [None, None, None]
    assert scope.schema.field(OBJECTION_COLUMN).type == pa.string()
    assert all(col.num_chunks == 1 for col in scope.columns)
    # No filter: every row, in version order.
    assert build_scope(table, GRANT, None).column(POSITION_COLUMN).to_pylist() == list(range(6))


def test_no_ungranted_or_hidden_value_reaches_any_output():
    table = version_table()
    scope = build_scope(table, GRANT, zhejiang_filter(table))
    out = output_table(scope)
    assert POSITION_COLUMN not in out.column_names and OBJECTION_COLUMN in out.column_names
    arrow = bytes(to_arrow_stream(out))
    bodies = {"json": page_json(out, {}), "csv": to_csv(out, bom=True), "arrow": arrow, "parquet": to_parquet(out)}
    forbidden = [*SECRETS, "district", "secret", "110101", "110105", "张三丰", "赵六", "钱七", "李四", "王五", "孙八",
                 "19851212", "19700101", "19990909", "330106198512120011"]
    for fmt, body in bodies.items():
        # Parquet is compressed; search its decoded text as well as its bytes.
        texts = [body]
        if fmt == "parquet":
            texts.append(pq.read_table(io.BytesIO(body)).to_pandas().to_csv().encode())
        if fmt == "arrow":
            texts.append(pa.ipc.open_stream(arrow).read_all().to_pandas().to_csv().encode())
        for text in texts:
            for word in forbidden:
                assert word.encode() not in text, (fmt, word)
    rows = orjson.loads(bodies["json"])["rows"]
    assert [r["xm"] for r in rows] == ["李*", "王*", "孙*"]
    assert set(rows[0]) == {"amount", "sfzhm", "xm", "born", OBJECTION_COLUMN}


def test_objection_marks_land_on_rows_and_name_granted_items_only():
    table = version_table()
    objections = {
        "amount": np.array([0, 2, 5], dtype=np.int64),  # row 0 is outside the scope
        "xm": np.array([5], dtype=np.int64),
        "secret": np.array([1, 2, 5], dtype=np.int64),  # not granted: must never be named
        "district": np.array([1], dtype=np.int64),
        "born": None,  # the item as a whole: not a row mark
        "sfzhm": np.array([], dtype=np.int64),
    }
    scope = build_scope(table, GRANT, zhejiang_filter(table), objections)
    marks = dict(zip(scope.column(POSITION_COLUMN).to_pylist(), scope.column(OBJECTION_COLUMN).to_pylist()))
    assert marks == {1: None, 2: "amount", 5: "amount,xm"}
    # Column order decides the order within a mark.
    reordered = build_scope(table, [GRANT[2], GRANT[0]], None, objections)
    assert reordered.column(OBJECTION_COLUMN).to_pylist() == ["amount", None, "amount", None, None, "xm,amount"]
    for body in (page_json(output_table(scope), {}), to_csv(output_table(scope))):
        assert b"secret" not in body and b"district" not in body


def test_build_scope_missing_item_is_null_and_reserved_names_refused():
    table = version_table()
    scope = build_scope(table, [ColumnSpec("amount", None), ColumnSpec("added_later", "generic")], None)
    assert scope.column("added_later").to_pylist() == [None] * 6
    with pytest.raises(ValueError):
        build_scope(table, [ColumnSpec("amount", None), ColumnSpec("amount", None)], None)
    with pytest.raises(ValueError):
        build_scope(table.append_column(POSITION_COLUMN, pa.array(range(6))), GRANT, None)


# --- view and paging ----------------------------------------------------------------------------------------------

def big_scope(n: int = 1000) -> pa.Table:
    rng = np.random.default_rng(7)
    table = pa.table({
        "grp": pa.array(rng.integers(0, 5, n)),
        "val": pa.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 3, n).astype(object))),
        "name": pa.array([f"n{i % 7}" for i in range(n)]),
        "hidden": pa.array(rng.integers(0, 2, n)),
    })
    return build_scope(table, [ColumnSpec("grp", None), ColumnSpec("val", None), ColumnSpec("name", "name")],
                       pc.field("hidden") == 1)


def test_make_view_without_narrowing_is_the_scope():
    scope = big_scope()
    assert make_view(scope, [], []) is scope


def test_make_view_order_is_total_and_stable_and_paging_covers_every_row_once():
    scope = big_scope()
    conds = bind_conditions(parse_filter_params(["grp:ne:4"]), scope.schema, ["grp", "val", "name"])
    sort = parse_sort("-grp,val")
    view = make_view(scope, conds, sort)
    again = make_view(scope, conds, sort)
    assert view.equals(again)
    expected = sorted((r for r in scope.to_pylist() if r["grp"] != 4),
                      key=lambda r: (-r["grp"], r["val"] is None, r["val"] if r["val"] is not None else 0,
                                     r[POSITION_COLUMN]))
    assert view.column(POSITION_COLUMN).to_pylist() == [r[POSITION_COLUMN] for r in expected]
    seen: list[int] = []
    for offset in range(0, view.num_rows, 37):
        seen += view.slice(offset, 37).column(POSITION_COLUMN).to_pylist()
    assert len(seen) == len(set(seen)) == view.num_rows == len(expected)
    # Sort keys with many ties: the position breaks them.
    by_name = make_view(scope, [], parse_sort("name"))
    rows = list(zip(by_name.column("name").to_pylist(), by_name.column(POSITION_COLUMN).to_pylist()))
    assert rows == sorted(rows)
    # Only a filter: version order kept.
    only_filter = make_view(scope, conds, []).column(POSITION_COLUMN).to_pylist()
    assert only_filter == sorted(only_filter)


def test_make_view_refuses_unknown_columns():
    scope = big_scope(50)
    with pytest.raises(GatewayInputError, match="hidden"):
        make_view(scope, [], [("hidden", "ascending")])
    with pytest.raises(GatewayInputError):
        make_view(scope, [], [(POSITION_COLUMN, "descending")])
    with pytest.raises(GatewayInputError):
        make_view(scope, [], [("grp", "sideways")])
    with pytest.raises(GatewayInputError, match="hidden"):
        make_view(scope, [Condition("hidden", "eq", 1)], [])


def test_parse_sort():
    assert parse_sort("a,-b, +c") == [("a", "ascending"), ("b", "descending"), ("c", "ascending")]
    assert parse_sort(None) == [] and parse_sort("") == []
    for bad in ("a,,b", "-", "a,", ",a", "a,b,c,d,e,f", "a,-a"):
        with pytest.raises(GatewayInputError):
            parse_sort(bad)


# --- cursors ------------------------------------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(body: bytes, secret: bytes = SECRET) -> str:
    text = b64(body)
    return text + "." + b64(hmac.new(secret, text.encode(), hashlib.sha256).digest()[:16])


def test_cursor_round_trip_and_format():
    payload = {"v": 3, "f": "abcdef0123456789", "o": 200}
    cursor = encode_cursor(SECRET, payload)
    assert decode_cursor(SECRET, cursor) == payload
    body, sig = cursor.split(".")
    assert "=" not in cursor and orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == payload
    assert len(base64.urlsafe_b64decode(sig + "==")) == 16
    assert cursor == signed(orjson.dumps(payload))


def test_cursor_tampering_and_garbage_are_refused():
    cursor = encode_cursor(SECRET, {"v": 3, "o": 200})
    body, sig = cursor.split(".")
    forged_body = b64(orjson.dumps({"v": 3, "o": 0}))
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    bad = ["", ".", "abc", cursor + ".x", f"{forged_body}.{sig}", f"{body}.{flipped}", f"{body}.{sig[:-1]}",
           f"{body}.{sig}A", f"{body}=.{sig}", f"{body}.{sig}==", "!!!!." + sig, cursor.replace(".", ""),
           encode_cursor(b"another secret", {"v": 3, "o": 200}), "a" * 600 + "." + sig, "\u00e9" * 30,
           signed(b"not json"), signed(b"[1, 2]"), signed(b'"text"'), signed(b"\xff\xfe")]
    for garbage in bad:
        with pytest.raises(GatewayInputError, match="游标无效"):
            decode_cursor(SECRET, garbage)
    with pytest.raises(GatewayInputError):
        decode_cursor(SECRET, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("offset", [-1, "10", 1.5, True, None, [1]])
def test_cursor_offset_must_be_a_non_negative_int(offset):
    cursor = signed(orjson.dumps({"v": 1, "o": offset}))
    with pytest.raises(GatewayInputError, match="游标无效"):
        decode_cursor(SECRET, cursor)


def test_cursor_limits():
    with pytest.raises(ValueError):
        encode_cursor(SECRET, {"f": "x" * 600})
    with pytest.raises(ValueError):
        encode_cursor(b"", {"o": 1})


# --- encoders -----------------------------------------------------------------------------------------------------

def typed_table(nan: bool = True) -> pa.Table:
    return pa.table({
        "s": pa.array(["a", None, "中文"]),
        "i": pa.array([1, None, -3], pa.int64()),
        "u": pa.array([1, 2, 3], pa.uint8()),
        "f": pa.array([1.5, None, float("nan") if nan else 2.0]),
        "b": pa.array([True, None, False]),
        "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1900, 1, 1)]),
        "far": pa.array([3_000_000, None, 0], pa.int32()).cast(pa.date32()),
        "ts": pa.array([dt.datetime(2024, 5, 1, 8, 30, 5), None, dt.datetime(1969, 12, 31, 23, 59, 59)],
                       pa.timestamp("s")),
        "ms": pa.array([dt.datetime(2024, 5, 1, 8, 30, 5, 250000), None, None], pa.timestamp("ms")),
        "ns": pa.array([1_714_552_205_000_000_001, None, 0], pa.timestamp("ns")),
        "tz": pa.array([dt.datetime(2024, 5, 1, 0, 30), None, None], pa.timestamp("s", tz="Asia/Shanghai")),
        "dec": pa.array([decimal.Decimal("12.50"), None, decimal.Decimal("-0.01")], pa.decimal128(10, 2)),
        "cat": pa.array(["x", "y", None]).dictionary_encode(),
        "big": pa.array(["l", None, "m"], pa.large_string()),
        "none": pa.nulls(3),
        POSITION_COLUMN: pa.array([7, 8, 9], pa.int64()),
    })


def test_page_json_values():
    body = page_json(typed_table(), {"total": 3, "rows": "replaced", "next_cursor": None})
    doc = orjson.loads(body)
    assert doc["total"] == 3 and doc["next_cursor"] is None
    assert doc["rows"] == [
        {"s": "a", "i": 1, "u": 1, "f": 1.5, "b": True, "day": "2024-02-29", "far": str(np.datetime64(3_000_000, "D")),
         "ts": "2024-05-01T08:30:05", "ms": "2024-05-01T08:30:05.250000", "ns": "2024-05-01T08:30:05.000000001",
         "tz": "2024-05-01T08:30:00+08:00", "dec": "12.50", "cat": "x", "big": "l", "none": None},
        {"s": None, "i": None, "u": 2, "f": None, "b": None, "day": None, "far": None, "ts": None, "ms": None,
         "ns": None, "tz": None, "dec": None, "cat": "y", "big": None, "none": None},
        {"s": "中文", "i": -3, "u": 3, "f": None, "b": False, "day": "1900-01-01", "far": "1970-01-01",
         "ts": "1969-12-31T23:59:59", "ms": None, "ns": "1970-01-01T00:00:00.000000000", "tz": None,
         "dec": "-0.01", "cat": None, "big": "m", "none": None},
    ]
    assert list(doc["rows"][0]) == [n for n in typed_table().column_names if n != POSITION_COLUMN]


def test_page_json_edge_shapes():
    assert orjson.loads(page_json(typed_table().slice(0, 0), {"a": 1})) == {"a": 1, "rows": []}
    odd = pa.table({"名称": ["x"], "it's \"q\"\n": [1], "{k0}": [2]})
    assert orjson.loads(page_json(odd, {}))["rows"] == [{"名称": "x", "it's \"q\"\n": 1, "{k0}": 2}]
    chunked = pa.Table.from_batches([pa.record_batch({"a": [1, 2]}), pa.record_batch({"a": [3]})])
    assert orjson.loads(page_json(chunked, {}))["rows"] == [{"a": 1}, {"a": 2}, {"a": 3}]


def awkward_table() -> pa.Table:
    """Values whose JSON literal Arrow's kernels cannot make alone: escapes, commas, nested values, float32, floats
    orjson writes in exponent form, dates outside Python's years."""
    return pa.table({
        "esc": pa.array(['a"b', "c\\d", "x\ny", None, "ok,1", "\x00", "é/\u2028"] * 3),
        "lst": pa.array([[1, 2], [3], None, [], [4], [5, 6], [7]] * 3),
        "st": pa.array([{"a": 1}, {"a": 2}, None, {"a": 3}, {"a": None}, {"a": 4}, {"a": 5}] * 3),
        "f32": pa.array([0.1, 1.5, None, 2.0, -0.0, 3.25, 1e20] * 3, pa.float32()),
        "fl": pa.array([100.0, 1e16, 1e-7, float("inf"), -0.0, 15505018980.713717, None] * 3),
        "day": pa.array([0, -800_000, 3_000_000, None, 1, 2, 3] * 3, pa.int32()).cast(pa.date32()),
        "d64": pa.array([dt.datetime(2020, 1, 1)] * 21, pa.date64()),
        "t": pa.array([dt.time(1, 2, 3)] * 21),
        "dur": pa.array([dt.timedelta(days=1, seconds=5)] * 21),
        "bin": pa.array([b"\x00\x01,"] * 21),
        "ok": pa.array(["a", "b", "c", "d", "e", "f", "g"] * 3),
        "last": pa.array([1.25, None, 2.5, 3.0, 4.0, 5.0, 6.0] * 3),  # a comma-cut column in the last place
    })


@pytest.mark.parametrize("make", [lambda: pa.concat_tables([typed_table()] * 7).combine_chunks(), awkward_table,
                                  lambda: awkward_table().select(["ok", "last"]),
                                  lambda: typed_table().select(["none", POSITION_COLUMN])])
@pytest.mark.parametrize("block_rows", [1, 4, 1000])
def test_json_row_blocks_write_what_page_json_writes(make, block_rows):
    """The gateway pages JSON from blocks encoded with Arrow kernels; every page must be byte for byte what the
    per-value encoder writes, on every type and wherever a page starts and ends across blocks."""
    table = make()
    blocks = JsonRowBlocks(table, block_rows=block_rows, keep=2)
    n = table.num_rows
    meta = {"total": n, "next_cursor": None}
    for offset, count in [(0, 1), (0, 5), (3, 9), (2, n), (n - 1, 5), (n, 3), (0, n)]:
        assert page_json_with_rows(blocks.text(offset, count), meta) == page_json(table.slice(offset, count), meta)
    assert page_json_with_rows(b"", {}) == page_json(table.slice(0, 0), {}) == b'{"rows":[]}'
    with pytest.raises(ValueError):
        page_json_with_rows(b"", {"rows": 1})


def test_json_row_blocks_encode_a_block_once_per_pass(monkeypatch):
    """Paging through a view in order encodes each block once; only the last `keep` blocks are held."""
    from sharing import engine

    encoded = []
    real = engine.json_rows
    monkeypatch.setattr(engine, "json_rows", lambda t: encoded.append(t.num_rows) or real(t))
    table = pa.table({"a": list(range(1000)), "b": [str(i) for i in range(1000)]})
    blocks = JsonRowBlocks(table, block_rows=300, keep=2)
    text = b",".join(blocks.text(offset, 100) for offset in range(0, 1000, 100))
    assert orjson.loads(b"[" + text + b"]") == table.to_pylist()
    assert encoded == [300, 300, 300, 100]
    assert len(blocks._blocks) == 2
    blocks.text(0, 10)  # long gone: encoded again
    assert encoded[-1] == 300 and len(encoded) == 5


def test_output_table_drops_only_the_position():
    t = typed_table().append_column(OBJECTION_COLUMN, pa.array(["a", None, None]))
    out = output_table(t)
    assert POSITION_COLUMN not in out.column_names and OBJECTION_COLUMN in out.column_names
    assert output_table(out) is out


def test_to_csv():
    t = pa.table({"名称": ["甲", None], "day": pa.array([dt.date(2024, 1, 2), None]), POSITION_COLUMN: [1, 2]})
    plain = to_csv(t)
    assert plain.decode("utf-8").splitlines() == ['"名称","day"', '"甲",2024-01-02', ","]
    assert to_csv(t, bom=True) == b"\xef\xbb\xbf" + plain


def test_arrow_stream_reads_back():
    t = output_table(typed_table(nan=False))  # NaN != NaN would fail the equality below
    many = pa.concat_tables([t] * 5).combine_chunks()
    body = to_arrow_stream(many, batch_rows=4)
    assert bytes(body[-8:]) == b"\xff\xff\xff\xff\x00\x00\x00\x00"  # end of stream
    reader = pa.ipc.open_stream(body)
    batches = list(reader)
    assert [b.num_rows for b in batches] == [4, 4, 4, 3]  # 15 rows in batches of at most 4
    back = pa.Table.from_batches(batches)
    assert back.schema.equals(many.schema) and back.equals(many)
    empty = pa.ipc.open_stream(to_arrow_stream(t.slice(0, 0))).read_all()
    assert empty.num_rows == 0 and empty.schema.equals(t.schema)
    with_pos = pa.ipc.open_stream(to_arrow_stream(typed_table())).read_all()
    assert POSITION_COLUMN not in with_pos.column_names


def test_to_parquet():
    t = output_table(typed_table(nan=False))
    data = to_parquet(t)
    back = pq.read_table(io.BytesIO(data))
    assert back.cast(t.schema).equals(t)  # Parquet has no seconds unit: timestamp[s] comes back as [ms]
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
