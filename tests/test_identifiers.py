"""quality.identifiers: the vectorised validators, checked element by element against python-stdnum.

The validators judge values as stored, so the oracle is "stdnum accepts it and it is already in canonical form"
(stdnum itself would first strip whitespace, upper-case, and drop separators). No database needed.
"""
from __future__ import annotations

import datetime as dt
import random
import re

import pyarrow as pa
import pytest
from stdnum import numdb
from stdnum.cn import ric, uscc

from quality.identifiers import (
    CHECK_DESCRIPTIONS,
    CHECKS,
    cn_division_code,
    cn_gender_code,
    cn_mobile,
    cn_org_code,
    cn_resident_id,
    cn_uscc,
    division_codes,
    division_name,
    id_birth_date_matches,
    id_gender_matches,
)

TODAY = dt.date(2026, 11, 23)  # fixed so that "birth date in the future" does not drift
SAMPLES = 20_000
CANONICAL = re.compile(r"[0-9A-Z]+")  # what a stored value must look like; stdnum would normalise anything else

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
DIVISION_CODES = sorted(division_codes())


# Scalar reference formulas (shared/notes/quality.md), written independently of both stdnum and the module.

def ric_check_char(body: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = (12 - sum(int(c) * w for c, w in zip(body, weights)) % 11) % 11
    return "X" if check == 10 else str(check)


def uscc_check_char(body: str) -> str:
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    return USCC_ALPHABET[(31 - sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, weights)) % 31) % 31]


def org_check_char(body: str) -> str:
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    check = 11 - sum(int(c, 36) * w for c, w in zip(body, weights)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def ric_oracle(value: str) -> bool:
    if not CANONICAL.fullmatch(value):
        return False
    try:
        valid = ric.is_valid(value)
    except KeyError:  # stdnum 2.2 raises for an address code whose province exists but whose county does not
        return False
    return valid and ric.get_birth_date(value) <= TODAY


def uscc_oracle(value: str) -> bool:
    return bool(CANONICAL.fullmatch(value)) and uscc.is_valid(value)


def assert_matches_oracle(values: list[str], got: pa.Array, oracle) -> None:
    expected = [oracle(v) for v in values]
    mismatches = [(v, g, e) for v, g, e in zip(values, got.to_pylist(), expected) if g != e]
    assert mismatches[:20] == []
    assert sum(expected) >= SAMPLES and len(values) - sum(expected) >= SAMPLES


# ---------------------------------------------------------------------------------------------------------------------
# Generated values

def random_date(rng: random.Random, start: dt.date = dt.date(1900, 1, 1)) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((TODAY - start).days + 1))


def make_resident_id(rng: random.Random, code: str | None = None, birth: str | None = None) -> str:
    code = code or rng.choice(DIVISION_CODES)
    birth = birth or random_date(rng).strftime("%Y%m%d")
    body = code + birth + f"{rng.randrange(1000):03d}"
    return body + ric_check_char(body)


def make_uscc(rng: random.Random, head: str | None = None) -> str:
    head = head or rng.choice("159") + rng.choice("123") + rng.choice(DIVISION_CODES)
    body = head + "".join(rng.choice(USCC_ALPHABET) for _ in range(17 - len(head)))
    return body + uscc_check_char(body)


def flip(rng: random.Random, value: str, alphabet: str) -> str:
    i = rng.randrange(len(value))
    return value[:i] + rng.choice([c for c in alphabet if c != value[i]]) + value[i + 1:]


def transpose(rng: random.Random, value: str, alphabet: str) -> str:
    i = rng.randrange(len(value) - 1)
    if value[i] == value[i + 1]:
        return flip(rng, value, alphabet)
    return value[:i] + value[i + 1] + value[i] + value[i + 2:]


def wrong_length(rng: random.Random, value: str) -> str:
    return rng.choice([value[:-1], value[1:], value + rng.choice("0123456789X"), value[:15], value[:17], ""])


def with_whitespace(rng: random.Random, value: str) -> str:
    i = rng.randrange(1, len(value))
    return rng.choice([" " + value, value + " ", value + "\n", "\t" + value, value + "\u3000", value[:i] + " " + value[i:]])


def with_foreign_char(rng: random.Random, value: str) -> str:
    i = rng.randrange(len(value))
    digit = rng.randrange(10)
    foreign = rng.choice(["A", "O", "x", "-", ".", "中", chr(0xFF10 + digit), "\u0663"])  # full-width / Arabic-Indic
    return value[:i] + foreign + value[i + 1:]


def valid_resident_id(rng: random.Random) -> str:
    # Many codes in the table are historical; keep the bodies whose code was in use in their birth year.
    while not ric.is_valid(value := make_resident_id(rng)):
        pass
    return value


def resident_id_with_x(rng: random.Random) -> str:
    while not (value := make_resident_id(rng)).endswith("X"):
        pass
    return value


def corrupt_resident_id(rng: random.Random, value: str) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return flip(rng, value, "0123456789")
    if kind == 1:
        return transpose(rng, value, "0123456789")
    if kind == 2:
        return value[:17] + rng.choice([c for c in "0123456789X" if c != value[17]])
    if kind == 3:
        return wrong_length(rng, value)
    if kind == 4:
        return resident_id_with_x(rng).lower()
    if kind == 5:
        return with_whitespace(rng, value)
    if kind == 6:
        return with_foreign_char(rng, value)
    if kind == 7:  # impossible or future birth dates, with a correct check character
        birth = rng.choice(["19990231", "20230229", "19000229", "21000229", "19901301", "19900001", "19900100",
                            "19900132", "19900431", "00000101", "20991231", "20261124"])
        return make_resident_id(rng, code=value[:6], birth=birth)
    # unknown address codes, a province without the county, a code used outside its years, with a correct check
    code, birth = rng.choice([("999999", None), ("000000", None), ("110199", None), ("113000", None),
                              ("110103", "20150101"), ("110111", "19800101"), ("120110", None)])
    return make_resident_id(rng, code=code, birth=birth)


def corrupt_uscc(rng: random.Random, value: str) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return flip(rng, value, USCC_ALPHABET)
    if kind == 1:
        return transpose(rng, value, USCC_ALPHABET)
    if kind == 2:
        return value[:17] + rng.choice([c for c in USCC_ALPHABET if c != value[17]])
    if kind == 3:
        return wrong_length(rng, value)
    if kind == 4:  # lower case, whole or one letter
        letters = [i for i, c in enumerate(value) if c.isalpha()]
        if not letters:
            return value.lower() + "a"
        i = rng.choice(letters)
        return rng.choice([value.lower(), value[:i] + value[i].lower() + value[i + 1:]])
    if kind == 5:
        return with_whitespace(rng, value)
    if kind == 6:  # separators stdnum would drop, full-width digits, letters outside the alphabet
        i = rng.randrange(1, 17)
        return rng.choice([value[:i] + "-" + value[i:], value[:i] + " " + value[i:], with_foreign_char(rng, value),
                           value[:i] + rng.choice("IOSVZ") + value[i + 1:]])
    if kind == 7:  # a letter among the first 8 characters (e.g. authority Y), with a correct check character
        body = value[:17]
        i = rng.randrange(8)
        return make_uscc(rng, head=body[:i] + rng.choice("YNAGH") + body[i + 1:8])
    return rng.choice(["", "91110000600037341", "9111000060003734LL", "０" * 18])


def shuffled(rng: random.Random, make, corrupt, count: int = SAMPLES) -> list[str]:
    valid = [make(rng) for _ in range(count)]
    corrupted = [corrupt(rng, rng.choice(valid)) for _ in range(int(count * 1.1))]
    values = valid + corrupted
    rng.shuffle(values)
    return values


# ---------------------------------------------------------------------------------------------------------------------
# Resident ID and USCC against stdnum

def test_resident_id_equals_stdnum_on_generated_values():
    values = shuffled(random.Random(20261123), valid_resident_id, corrupt_resident_id)
    assert_matches_oracle(values, cn_resident_id(pa.array(values), today=TODAY), ric_oracle)


def test_uscc_equals_stdnum_on_generated_values():
    values = shuffled(random.Random(32100), make_uscc, corrupt_uscc)
    assert_matches_oracle(values, cn_uscc(pa.array(values)), uscc_oracle)


def test_known_samples():
    assert cn_resident_id(["11010519491231002X", "110105199003071239"]).to_pylist() == [True, True]
    assert cn_uscc(["91110000600037341L"]).to_pylist() == [True]


def test_resident_id_rejects_what_stdnum_would_normalise():
    stored = ["11010519491231002x", " 11010519491231002X", "11010519491231002X\n", "１1010519491231002X"]
    assert all(ric.is_valid(v) for v in stored)
    assert cn_resident_id(stored).to_pylist() == [False] * 4


def test_uscc_rejects_what_stdnum_would_normalise():
    stored = ["91110000600037341l", "9111-0000-600037341L", "91110000 600037341L", " 91110000600037341L"]
    assert all(uscc.is_valid(v) for v in stored)
    assert cn_uscc(stored).to_pylist() == [False] * 4


def test_resident_id_birth_date_not_after_today():
    born_tomorrow = make_resident_id(random.Random(1), code="110105", birth="20261124")
    assert cn_resident_id([born_tomorrow], today=TODAY).to_pylist() == [False]
    assert cn_resident_id([born_tomorrow], today=dt.date(2026, 11, 24)).to_pylist() == [True]


def test_resident_id_address_code_must_be_in_use_in_the_birth_year():
    rng = random.Random(2)
    # 110103 崇文区 existed until 2010; 110111 房山区 from 1986
    cases = {("110103", "20100630"): True, ("110103", "20110101"): False,
             ("110111", "19860101"): True, ("110111", "19851231"): False,
             ("110199", "19900101"): False, ("999999", "19900101"): False}
    values = [make_resident_id(rng, code=code, birth=birth) for code, birth in cases]
    assert cn_resident_id(values).to_pylist() == list(cases.values())


# ---------------------------------------------------------------------------------------------------------------------
# Input kinds

@pytest.mark.parametrize("name", sorted(CHECKS))
def test_input_kinds_give_the_same_answers(name):
    rng = random.Random(3)
    values = shuffled(rng, valid_resident_id, corrupt_resident_id, count=1000) + [None] * 50
    values += [make_uscc(rng) for _ in range(200)] + ["110105", "1", "9", "13800138000", "60003734-1", "600037341"]
    rng.shuffle(values)
    check = CHECKS[name]
    expected = check(pa.array(values)).to_pylist()
    assert check(pa.array(values, pa.large_string())).to_pylist() == expected
    assert check(pa.array(values, pa.string_view())).to_pylist() == expected
    assert check(pa.array(values).dictionary_encode()).to_pylist() == expected
    chunked = check(pa.chunked_array([values[:777], values[777:1500], values[1500:]]))
    assert isinstance(chunked, pa.ChunkedArray) and chunked.num_chunks == 3
    assert chunked.to_pylist() == expected
    assert check(pa.array(values).slice(333, 1000)).to_pylist() == expected[333:1333]  # non-zero array offset
    assert isinstance(check(pa.array(values)), pa.BooleanArray)


def test_non_string_input_is_refused():
    with pytest.raises(TypeError):
        cn_resident_id(pa.array([110105199003071239]))


# ---------------------------------------------------------------------------------------------------------------------
# Division codes

def test_division_codes_come_from_stdnum_table():
    codes = division_codes()
    assert len(codes) > 6000 and all(len(c) == 6 and c.isdigit() for c in codes)
    assert {"110000", "110105", "110103", "440305"} <= codes
    table = numdb.get("cn/loc")
    rng = random.Random(4)
    sample = [f"{rng.randrange(1_000_000):06d}" for _ in range(5000)] + rng.sample(sorted(codes), 2000)
    in_stdnum = [any("county" in props for _, props in table.info(c)) for c in sample]
    assert cn_division_code(sample).to_pylist() == in_stdnum
    assert [c in codes for c in sample] == in_stdnum


def test_division_code_values():
    values = ["110105", "110103", "110000", "999999", "000000", "11010", "1101050", " 110105", "110105 ", "11010a",
              "１10105"]
    assert cn_division_code(values).to_pylist() == [True, True, True, False, False, False, False, False, False, False,
                                                   False]


def test_division_name():
    assert division_name("110105") == "朝阳区"
    assert division_name("110000") == "北京市"
    assert division_name("110103") == "崇文区"  # historical (until 2010), the date range is not part of the name
    assert division_name("120110") == "东丽区"  # 东郊区 until 1991, the latest name wins
    assert division_name("999999") is None
    assert division_name("1101") is None


# ---------------------------------------------------------------------------------------------------------------------
# Organization code, gender code, mobile

def test_org_code_examples():
    # 60003734-1 is the organization code inside USCC 91110000600037341L. By hand: 6·3 + 0·7 + 0·9 + 0·10 + 3·5
    # + 7·8 + 3·4 + 4·2 = 109; 109 mod 11 = 10; 11 − 10 = 1.
    assert org_check_char("60003734") == "1"
    values = ["60003734-1", "600037341", "60003734-2", "6000373-41", "60003734--1", "60003734-", "6000373411",
              " 600037341", "60003734 1", "a0003734-1"]
    assert cn_org_code(values).to_pylist() == [True, True, False, False, False, False, False, False, False, False]


def test_org_code_generated():
    rng = random.Random(11714)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    values, expected = [], []
    for _ in range(20_000):
        body = "".join(rng.choice(alphabet) for _ in range(8))
        check = org_check_char(body)
        wrong = rng.choice([c for c in "0123456789X" if c != check])
        values += [body + check, body + "-" + check, body + wrong, body + "-" + wrong, body.lower() + check]
        expected += [True, True, False, False, body.lower() == body]
    assert {v[-1] for v, ok in zip(values, expected) if ok} >= {"X", "0"}  # both special cases (10 → X, 11 → 0)
    assert cn_org_code(values).to_pylist() == expected


def test_gender_code():
    values = ["0", "1", "2", "9", "3", "男", "01", "1 ", " 1", "", "M"]
    assert cn_gender_code(values).to_pylist() == [True] * 4 + [False] * 7


def test_mobile():
    valid = ["13800138000", "+8613800138000", "86-13912345678", "+86 13912345678", "8613912345678", "19912345678"]
    invalid = ["12800138000", "1380013800", "138001380000", "13800138000 ", " 13800138000", "13800138000\n",
               "+86-+13800138000", "0086 13800138000", "+85213800138000", "138-0013-8000", "１3800138000",
               "+86  13800138000", "10086", ""]
    assert cn_mobile(valid + invalid).to_pylist() == [True] * len(valid) + [False] * len(invalid)


# ---------------------------------------------------------------------------------------------------------------------
# Consistency between columns

def test_id_birth_date_matches():
    ids = ["11010519491231002X", "11010519491231002X", None, "11010519491231002X", "1101051949123100", "110105194912310"]
    dates = [dt.date(1949, 12, 31), dt.date(1949, 12, 30), dt.date(1949, 12, 31), None, dt.date(1949, 12, 31),
             dt.date(1949, 12, 31)]
    expected = [True, False, None, None, None, None]
    assert id_birth_date_matches(pa.array(ids), pa.array(dates, pa.date32())).to_pylist() == expected
    moments = [None if d is None else dt.datetime(d.year, d.month, d.day, 23, 59) for d in dates]
    assert id_birth_date_matches(ids, pa.array(moments, pa.timestamp("s"))).to_pylist() == expected
    texts = ["1949-12-31", "19491230", "19491231", None, "1949-12-31", "19491231"]
    assert id_birth_date_matches(ids, texts).to_pylist() == expected
    assert id_birth_date_matches(["11010519491231002X"] * 4, ["19491231", "1949/12/31", "1949-12-3", ""]).to_pylist() \
        == [True, None, None, None]
    chunked = id_birth_date_matches(pa.chunked_array([ids[:2], ids[2:]]), pa.array(dates))
    assert isinstance(chunked, pa.ChunkedArray) and chunked.to_pylist() == expected
    with pytest.raises(ValueError):
        id_birth_date_matches(ids, dates[:-1])


def test_id_gender_matches():
    female, male = "11010519491231002X", "110105199003071239"  # 17th digits 2 and 3
    ids = [female, female, male, male, male, male, None, male, "11010519900307123", "1101051990030712A9"]
    genders = ["2", "1", "1", "2", "0", "9", "1", None, "1", "1"]
    expected = [True, False, True, False, None, None, None, None, None, None]
    assert id_gender_matches(ids, genders).to_pylist() == expected
    assert id_gender_matches(pa.array(ids), pa.array([2, 1, 1, 2, 0, 9, 1, None, 1, 1])).to_pylist() == expected
    assert id_gender_matches([male, male], ["男", "3"]).to_pylist() == [None, None]


# ---------------------------------------------------------------------------------------------------------------------
# Nulls and the registry

@pytest.mark.parametrize("name", sorted(CHECKS))
def test_nulls_pass_through(name):
    values = [None, "11010519491231002X", None, "", None]
    result = CHECKS[name](pa.array(values))
    assert result.to_pylist()[::2] == [None, None, None]
    assert result.null_count == 3
    assert CHECKS[name](pa.array([None, None])).to_pylist() == [None, None]


def test_registry():
    names = {"cn_resident_id", "cn_uscc", "cn_org_code", "cn_division_code", "cn_gender_code", "cn_mobile"}
    assert set(CHECKS) == set(CHECK_DESCRIPTIONS) == names
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in CHECK_DESCRIPTIONS.values())


def _messy_ids_genders_dates(n: int = 4000, seed: int = 5):
    rng = random.Random(seed)
    ids, genders, dates = [], [], []
    for i in range(n):
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(30000))
        body = f"110105{birth:%Y%m%d}{rng.randrange(1000):03d}"
        value = body + rng.choice("0123456789X")  # the check character is not these checks' business
        shape = rng.randrange(12)
        if shape == 0:
            value = None
        elif shape == 1:
            value = value[:17]  # too short
        elif shape == 2:
            value = value[:16] + "A" + value[17:]  # 17th character not a digit
        elif shape == 3:
            value = value[:8] + "x" + value[9:]  # a letter inside the birth date
        elif shape == 4:
            value = value[:10] + "〇" + value[11:]  # 18 characters, not 18 bytes
        elif shape == 5:
            birth = birth + dt.timedelta(days=1)  # disagrees with the date column
        ids.append(value)
        genders.append(rng.choice(["1", "2", "0", "9", None, "x"]))
        dates.append(None if rng.randrange(15) == 0 else birth)
    return ids, genders, dates


@pytest.mark.parametrize("ascii_only", [True, False])
def test_fast_id_consistency_checks_equal_the_text_versions(ascii_only):
    """The byte-matrix versions of the ID↔gender and ID↔birth-date checks give exactly the text versions' answers —
    true, false and null — on messy data, plain and chunked; a non-ASCII 18-character value sends them to the text
    versions."""
    from quality import identifiers

    ids, genders, dates = _messy_ids_genders_dates()
    if ascii_only:
        keep = [i for i, v in enumerate(ids) if v is None or v.isascii()]
        ids, genders, dates = [ids[i] for i in keep], [genders[i] for i in keep], [dates[i] for i in keep]
    id_col, gender_col, date_col = pa.array(ids), pa.array(genders), pa.array(dates, pa.date32())
    for left, right in ((id_col, gender_col), (pa.chunked_array([id_col[:100], id_col[100:]]), gender_col),
                        (id_col.slice(3), gender_col.slice(3))):
        assert identifiers.id_gender_matches(left, right).to_pylist() == \
            identifiers._id_gender_matches_text(left, right).to_pylist()
    for left, right in ((id_col, date_col), (id_col.slice(5), date_col.slice(5)),
                        (id_col, date_col.cast(pa.timestamp("s")))):
        assert identifiers.id_birth_date_matches(left, right).to_pylist() == \
            identifiers._id_birth_date_matches_text(left, right).to_pylist()
    assert identifiers.id_gender_matches(id_col, pa.array([1 if g == "1" else 2 for g in genders])).to_pylist() == \
        identifiers._id_gender_matches_text(id_col, pa.array([1 if g == "1" else 2 for g in genders])).to_pylist()
