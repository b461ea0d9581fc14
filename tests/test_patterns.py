"""The byte-level format patterns (quality/patterns.py) give RE2's answers: same True / False / null on values that
match, nearly match (one byte changed, inserted or dropped), are empty, non-ASCII, null, sliced or chunked."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from quality.patterns import compile_pattern, matches

ROOT = Path(__file__).resolve().parent.parent


def _standard_patterns() -> list[str]:
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((ROOT / "schemas" / "standards").glob("*.yaml")):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return sorted(found)


ID_PATTERN = r"^[1-9][0-9]{5}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]$"
EXTRA = [
    ID_PATTERN, r"^[0-9]+$", r"^[0-9]*$", r"^[A-Z]{2}[0-9]{2,4}X$", r"^\d{3}-\d{4}$", r"^(ab){2}[xy]$",
    r"^1[3-9][0-9]{9}$", r"^[0-9]{9,18}$", r"^$", r"^a+?b$",
]
NOT_TAKEN = [
    r"[0-9]{6}",  # not anchored: RE2 searches
    r"^[0-9]{6}",  # no end anchor
    r"^(J|L|BJ|BL)[0-9]{6}$",  # alternatives of different widths
    r"^[^0-9]{3}$",  # a negated class also allows non-ASCII characters
    r"^.{3}$",
    r"^[\u4e00-\u9fa5]{2,4}$",
    r"(?i)^[a-z]{3}$",
    r"^[0-9]+[a-z]+$",  # two repeats
    r"^\w{3}$",
    r"^[",  # not a pattern at all
]

_NOISE = ["0", "9", "X", "x", "A", "Z", "a", "-", " ", "\n", "中", "（", "é", "", "1", "2", "3"]


def _sample(compiled, rng: random.Random) -> str:
    """A value the compiled form allows, built from its pieces (RE2 is the judge, not this generator)."""
    out: list[bytes] = []

    def piece_value(piece) -> bytes:
        allowed = np.flatnonzero(piece.table) if piece.table is not None else piece.codes  # by byte / by value
        return int(rng.choice(allowed.tolist())).to_bytes(piece.width, "big")

    out += [piece_value(p) for p in compiled.prefix]
    if compiled.repeat is not None:
        allowed = np.flatnonzero(compiled.repeat.table).tolist()
        high = compiled.repeat.high if compiled.repeat.high is not None else compiled.repeat.low + 6
        out += [bytes([rng.choice(allowed)]) for _ in range(rng.randint(compiled.repeat.low, high))]
    out += [piece_value(p) for p in compiled.suffix]
    return b"".join(out).decode("ascii")


def _values(pattern: str, count: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    compiled = compile_pattern(pattern)
    values: list[str | None] = [None, "", "中文", "0" * 18, "1" * 18 + "\n"]
    for _ in range(count):
        value = _sample(compiled, rng)
        roll = rng.random()
        if roll < 0.35 and value:  # change one character
            at = rng.randrange(len(value))
            value = value[:at] + rng.choice(_NOISE) + value[at + 1:]
        elif roll < 0.45:  # insert one
            at = rng.randrange(len(value) + 1)
            value = value[:at] + rng.choice(_NOISE) + value[at:]
        elif roll < 0.55 and value:  # drop one
            at = rng.randrange(len(value))
            value = value[:at] + value[at + 1:]
        elif roll < 0.6:
            value = None
        values.append(value)
    return values


def _both(arr, pattern: str) -> tuple[list, list]:
    ours = matches(arr, pattern)
    assert ours is not None
    return ours.to_pylist(), pc.match_substring_regex(arr, pattern).to_pylist()


@pytest.mark.parametrize("pattern", sorted(set(_standard_patterns()) | set(EXTRA)))
def test_byte_level_patterns_equal_re2(pattern: str) -> None:
    if compile_pattern(pattern) is None:  # not a fixed shape of ASCII pieces: left to RE2, untouched
        assert matches(pa.array(["123"]), pattern) is None
        return
    values = _values(pattern, 3000, seed=len(pattern))
    for arr in (pa.array(values, pa.string()), pa.array(values, pa.large_string())):
        ours, re2 = _both(arr, pattern)
        assert ours == re2
        assert any(ours) and not all(v for v in ours if v is not None)  # both outcomes were exercised
        # a slice (offsets not starting at zero) and a chunked column give the same answers
        ours_slice, re2_slice = _both(arr.slice(7, 1500), pattern)
        assert ours_slice == re2_slice
        chunked = pa.chunked_array([arr.slice(0, 1000), arr.slice(1000)])
        assert matches(chunked, pattern).to_pylist() == pc.match_substring_regex(chunked, pattern).to_pylist()


def test_the_standards_simple_patterns_are_taken() -> None:
    """The speed-up reaches the patterns the standards actually use, including the ID number's."""
    taken = [p for p in _standard_patterns() if compile_pattern(p) is not None]
    assert compile_pattern(ID_PATTERN) is not None
    assert len(taken) >= len(_standard_patterns()) * 2 // 3


@pytest.mark.parametrize("pattern", NOT_TAKEN)
def test_patterns_outside_the_fixed_shape_go_to_re2(pattern: str) -> None:
    assert compile_pattern(pattern) is None
    assert matches(pa.array(["123456"]), pattern) is None


def test_back_to_back_ids_and_mixed_lengths_agree() -> None:
    """The byte-matrix path (every value 18 bytes) and the gather path (mixed lengths) give the same answers."""
    rng = random.Random(5)
    compiled = compile_pattern(ID_PATTERN)
    same_width = [_sample(compiled, rng) for _ in range(2000)]
    same_width[10] = same_width[10][:17] + "Y"
    same_width[20] = "0" + same_width[20][1:]
    ours, re2 = _both(pa.array(same_width), ID_PATTERN)
    assert ours == re2 and ours.count(False) == 2
    mixed = same_width + ["1101011990010112", None, "中" * 6]
    ours, re2 = _both(pa.array(mixed), ID_PATTERN)
    assert ours == re2


def test_non_string_columns_are_left_to_re2() -> None:
    assert matches(pa.array([1, 2]), r"^[0-9]+$") is None
    assert matches(pa.array([], pa.string()), r"^[0-9]+$").to_pylist() == []
