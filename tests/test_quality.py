"""Quality: suites generated from the standards run on every collection; results, scores, failing keys; GX parity."""
from __future__ import annotations

import csv
import datetime as dt
import io
import random

import pytest

from tests.conftest import bearer

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id(division: str, birth: dt.date, seq: int) -> str:
    body = f"{division}{birth:%Y%m%d}{seq:03d}"
    check = (12 - sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11) % 11
    return body + ("X" if check == 10 else str(check))


HEADER = ["sfzhm", "xm", "xbdm", "csrq", "mzdm", "hjdz", "hjdxzqhdm", "hh", "yhzgxdm", "whcddm"]


def population_rows(n: int = 200, seed: int = 5):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))
        seq = rng.randrange(1, 999)
        sfzhm = resident_id("110105", birth, seq)
        gender = "1" if seq % 2 else "2"
        rows.append([sfzhm, f"居民{i}", gender, birth.isoformat(), "01", "示范市东城区某街道1号", "110105",
                     f"{100000000 + i}", "01", "20"])
    return rows


def inject_errors(rows):
    """Known problems at known rows; returns {rule_id: set of failing ID numbers}."""
    rows = [list(r) for r in rows]
    expected = {}
    bad_check = rows[3][0][:17] + ("0" if rows[3][0][17] != "0" else "1")
    rows[3][0] = bad_check
    expected["cn_resident_id:sfzhm"] = {bad_check}
    rows[11][0] = rows[10][0]  # a duplicated key: both occurrences fail
    rows[11][2], rows[11][3] = rows[10][2], rows[10][3]
    expected["unique:sfzhm"] = {rows[10][0]}
    rows[20][1] = ""  # 姓名 required
    expected["not_null:xm"] = {rows[20][0]}
    rows[30][2] = "7"  # not a 性别代码
    expected["in_set:xbdm"] = {rows[30][0]}
    rows[40][3] = "1980-01-01" if not rows[40][0][6:14] == "19800101" else "1981-01-01"
    expected["id_birth_date:sfzhm+csrq"] = {rows[40][0]}
    rows[50][6] = "999999"  # no such division
    expected["cn_division_code:hjdxzqhdm"] = {rows[50][0]}
    rows[60][4] = "99"
    expected["in_set:mzdm"] = {rows[60][0]}
    return rows, expected


def csv_bytes(rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    return buf.getvalue().encode()


def deliver(client, token, rows):
    r = client.post("/api/v1/datasets/GAJ-00001/collections", files={"file": ("人口.csv", csv_bytes(rows))},
                    headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()


def test_every_collection_runs_the_suite_generated_from_the_standards(client, tokens):
    rows, expected = inject_errors(population_rows())
    deliver(client, tokens["gaj_publisher"], rows)
    r = client.get("/api/v1/datasets/GAJ-00001/quality", headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["version"] == 1 and result["row_count"] == 200
    by_rule = {x["rule_id"]: x for x in result["rules"]}
    # Rules come from the standards: required → not null, code lists → in set, checks → identifier, key → unique …
    for rule_id in ["not_null:sfzhm", "regex:sfzhm", "length:sfzhm", "cn_resident_id:sfzhm", "in_set:xbdm",
                    "cn_gender_code:xbdm", "unique:sfzhm", "between:csrq", "id_birth_date:sfzhm+csrq",
                    "id_gender:sfzhm+xbdm", "cn_division_code:hjdxzqhdm", "regex:hh"]:
        assert rule_id in by_rule, rule_id
    for rule_id, keys in expected.items():
        got = by_rule[rule_id]
        assert set(got["sample_keys"]) == keys, rule_id
        assert got["failing"] == (2 if rule_id.startswith("unique") else 1), rule_id
    assert by_rule["regex:hh"]["failing"] == 0
    scores = result["scores"]
    assert scores["准确性"] < 100 and scores["唯一性"] < 100 and scores["完整性"] < 100
    assert scores["时效性"] == 100.0
    assert by_rule["cn_resident_id:sfzhm"]["dimension"] == "准确性"


def test_all_failing_keys_are_retrievable(client, tokens):
    rows = population_rows(300)
    for i in range(0, 300, 3):
        rows[i][4] = "77"  # 100 bad 民族代码
    deliver(client, tokens["gaj_publisher"], rows)
    run = client.get("/api/v1/datasets/GAJ-00001/quality", headers=bearer(tokens["gaj_publisher"])).json()
    rule = next(x for x in run["rules"] if x["rule_id"] == "in_set:mzdm")
    assert rule["failing"] == 100 and len(rule["sample_keys"]) == 20
    keys = []
    for page in (1, 2):
        r = client.get(f"/api/v1/datasets/GAJ-00001/quality/runs/{run['id']}/failing",
                       params={"rule_id": "in_set:mzdm", "page": page, "page_size": 60},
                       headers=bearer(tokens["gaj_publisher"]))
        assert r.status_code == 200
        assert r.json()["total"] == 100
        keys += r.json()["keys"]
    assert sorted(keys) == sorted(rows[i][0] for i in range(0, 300, 3))


def test_quality_results_are_for_the_provider_and_the_steward(client, tokens):
    deliver(client, tokens["gaj_publisher"], population_rows(20))
    assert client.get("/api/v1/datasets/GAJ-00001/quality", headers=bearer(tokens["steward"])).status_code == 200
    assert client.get("/api/v1/datasets/GAJ-00001/quality", headers=bearer(tokens["scjg_publisher"])).status_code == 403
    assert client.get("/api/v1/datasets/GAJ-00001/quality").status_code == 401


def test_a_rerun_is_stored_as_a_new_run_of_the_same_version(client, tokens):
    deliver(client, tokens["gaj_publisher"], population_rows(20))
    r = client.post("/api/v1/datasets/GAJ-00001/quality/runs", headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 201 and r.json()["version"] == 1
    history = client.get("/api/v1/datasets/GAJ-00001/quality/runs", headers=bearer(tokens["gaj_publisher"])).json()
    assert history["total"] == 2


def test_fast_executor_results_equal_great_expectations(client, tokens, backend):
    if backend != "sqlite":
        pytest.skip("executor parity does not depend on the catalog database; run once")
    rows, _ = inject_errors(population_rows(400, seed=9))
    rng = random.Random(2)
    for i in rng.sample(range(400), 40):  # ~10% more noise across columns
        col = rng.choice([0, 2, 4, 6, 7, 8, 9])
        rows[i][col] = rng.choice(["", "X", "12345", "110105199002301234", "8", "abc"])
    deliver(client, tokens["gaj_publisher"], rows)
    fast = client.get("/api/v1/datasets/GAJ-00001/quality", headers=bearer(tokens["gaj_publisher"])).json()
    r = client.post("/api/v1/datasets/GAJ-00001/quality/runs", params={"executor": "gx"},
                    headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 201, r.text
    gx = r.json()
    assert gx["executor"] == "gx"
    fast_rules = {x["rule_id"]: x for x in fast["rules"]}
    gx_rules = {x["rule_id"]: x for x in gx["rules"]}
    assert fast_rules.keys() == gx_rules.keys()
    assert sum(x["failing"] for x in fast_rules.values()) > 40
    for rule_id, f in fast_rules.items():
        g = gx_rules[rule_id]
        assert (f["evaluated"], f["failing"]) == (g["evaluated"], g["failing"]), rule_id
        all_fast = client.get(f"/api/v1/datasets/GAJ-00001/quality/runs/{fast['id']}/failing",
                              params={"rule_id": rule_id, "page_size": 1000}, headers=bearer(tokens["steward"])).json()
        all_gx = client.get(f"/api/v1/datasets/GAJ-00001/quality/runs/{gx['id']}/failing",
                            params={"rule_id": rule_id, "page_size": 1000}, headers=bearer(tokens["steward"])).json()
        assert sorted(all_fast["keys"]) == sorted(all_gx["keys"]), rule_id
    assert gx["scores"] == fast["scores"]


def test_a_gx_run_builds_data_docs_for_the_steward(client, tokens, backend):
    if backend != "sqlite":
        pytest.skip("GX artefacts do not depend on the catalog database; run once")
    deliver(client, tokens["gaj_publisher"], inject_errors(population_rows(80))[0])
    r = client.post("/api/v1/datasets/GAJ-00001/quality/runs", params={"executor": "gx"},
                    headers=bearer(tokens["steward"]))
    assert r.status_code == 201, r.text
    page = client.get("/quality/datadocs/index.html", headers=bearer(tokens["steward"]))
    assert page.status_code == 200 and "GAJ-00001" in page.text
    assert client.get("/quality/datadocs/index.html", headers=bearer(tokens["gaj_publisher"])).status_code == 403
    assert client.get("/quality/datadocs/../../../etc/passwd", headers=bearer(tokens["steward"])).status_code == 404


def test_streaming_by_row_group_gives_the_same_outcomes_as_the_whole_table(db, tmp_path, backend):
    """Row numbers must survive the row-group offsets: failing rows sit in different groups of a small-group file."""
    if backend != "sqlite":
        pytest.skip("executor behaviour does not depend on the catalog database; run once")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from catalog.service import find_dataset
    from quality.executor import run_rules, run_rules_streaming
    from quality.suite import generate_rules

    rows, _ = inject_errors(population_rows(120))
    columns = list(zip(*rows))
    table = pa.table({name: pa.array([v or None for v in col]) for name, col in zip(HEADER, columns)})
    table = table.set_column(3, "csrq", pa.compute.cast(pa.compute.strptime(table["csrq"], "%Y-%m-%d", "s"),
                                                          pa.date32()))
    path = tmp_path / "groups.parquet"
    pq.write_table(table, path, row_group_size=7)
    with db.session() as session:
        rules = generate_rules(find_dataset(session, "GAJ-00001"))
    whole = {o.rule.id: (o.evaluated, o.failing.tolist()) for o in run_rules(rules, table)}
    streamed = {o.rule.id: (o.evaluated, o.failing.tolist()) for o in run_rules_streaming(rules, pq.ParquetFile(path))}
    assert streamed == whole
    assert sum(len(f) for _, f in whole.values()) >= 7


def _duplicates_by_dictionary(column):
    import numpy as np
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    present = codes >= 0
    counts = np.bincount(codes[present], minlength=len(encoded.dictionary))
    return np.flatnonzero(present & (counts[np.where(present, codes, 0)] > 1))


@pytest.mark.parametrize("width", [8, 9, 18, 33])
@pytest.mark.parametrize("hash_mix", ["real", "every_value_collides"])
def test_fixed_width_uniqueness_equals_the_dictionary_count(width, hash_mix, monkeypatch):
    """The fast `unique` path (sorted 64-bit hashes, exact check on the candidates) marks exactly the rows a plain
    count marks — also when every hash collides, which leaves the whole decision to the exact byte comparison."""
    import numpy as np
    import pyarrow as pa

    from quality import executor

    if hash_mix == "every_value_collides":
        monkeypatch.setattr(executor, "_MIX", np.uint64(0))
    rng = np.random.default_rng(width)
    numbers = rng.integers(0, 3000, 5000)
    values = [None if i % 211 == 0 else str(v).zfill(width)[::-1] for i, v in enumerate(numbers)]  # differ early
    column = pa.array(values)
    for sample in (column, column.slice(7)):  # a slice's offsets do not start at zero
        got = executor._duplicated_fixed_width(sample)
        assert got is not None and np.array_equal(got, _duplicates_by_dictionary(sample))
    assert executor._duplicated_fixed_width(pa.array(["abcdefgh", "abcdefghi", "abcdefgh"])) is None  # mixed widths
