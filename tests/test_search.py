"""Chinese full-text search with facets, filters, sort and pagination — on SQLite FTS5 and PostgreSQL tsvector."""
from __future__ import annotations

from tests.conftest import bearer
from tests.helpers import dataset_body, item

FACETS = {"department", "category", "share_type", "open_type", "security_grade", "collection_status"}


def _search(client, token, **params):
    params.setdefault("page_size", 100)
    r = client.get("/api/v1/datasets", params=params, headers=bearer(token) if token else None)
    assert r.status_code == 200, r.text
    return r.json()


def test_two_character_query_finds_the_credit_datasets(client, tokens):
    result = _search(client, tokens["steward"], q="信用")
    names = [h["name"] for h in result["items"]]
    assert result["total"] >= 3
    assert sum("信用" in n for n in names) >= 3
    # Every hit mentions 信用 somewhere it is indexed (name, keywords, summary or items).
    for hit in result["items"]:
        detail = client.get(f"/api/v1/datasets/{hit['code']}", headers=bearer(tokens["steward"])).json()
        text = " ".join([detail["name"], detail["summary"], *detail["keywords"], detail["department"]["name"],
                         *[i["name"] + i["element"]["name"] for i in detail["items"]]])
        assert "信用" in text, hit["name"]


def test_results_are_ranked_name_matches_first(client, tokens):
    result = _search(client, tokens["steward"], q="信用")
    scores = [h["score"] for h in result["items"]]
    assert scores == sorted(scores, reverse=True)
    first_without = next((i for i, h in enumerate(result["items"]) if "信用" not in h["name"]), len(scores))
    assert all("信用" in h["name"] for h in result["items"][:first_without])
    assert first_without >= 3


def test_two_word_query_ands_the_words_and_ranks_enterprise_registration_first(client, tokens):
    result = _search(client, tokens["steward"], q="企业 登记")
    assert result["items"][0]["name"] == "企业登记基本信息"
    assert result["total"] < _search(client, tokens["steward"], q="企业")["total"]


def test_facets_count_the_whole_match_not_the_page(client, tokens):
    result = _search(client, tokens["steward"], q="信用", page_size=2)
    assert set(result["facets"]) == FACETS
    assert len(result["items"]) == 2
    for facet, values in result["facets"].items():
        assert sum(v["count"] for v in values) == result["total"], facet
    dept = result["facets"]["department"][0]
    assert dept["label"] and dept["value"]


def test_a_filter_narrows_results_and_facets_stay_disjunctive(client, tokens):
    everything = _search(client, tokens["steward"])
    by_share = {v["value"]: v["count"] for v in everything["facets"]["share_type"]}
    filtered = _search(client, tokens["steward"], share_type="有条件共享")
    assert filtered["total"] == by_share["有条件共享"]
    assert {h["share_type"] for h in filtered["items"]} == {"有条件共享"}
    # The filtered facet still shows the other choices with their counts (OR within a facet).
    assert {v["value"]: v["count"] for v in filtered["facets"]["share_type"]} == by_share
    both = _search(client, tokens["steward"], share_type=["有条件共享", "无条件共享"])
    assert both["total"] == by_share["有条件共享"] + by_share["无条件共享"]
    narrower = _search(client, tokens["steward"], share_type="有条件共享", security_grade="L3")
    assert narrower["total"] <= filtered["total"]
    assert all(h["security_grade"] == "L3" for h in narrower["items"])


def test_filter_by_department(client, tokens):
    result = _search(client, tokens["steward"], department="GAJ")
    assert result["total"] > 0 and {h["department"]["code"] for h in result["items"]} == {"GAJ"}


def test_empty_query_lists_everything_with_facets(client, tokens):
    result = _search(client, tokens["steward"])
    assert result["total"] >= 40
    assert result["sort"] == "code"
    codes = [h["code"] for h in result["items"]]
    assert codes == sorted(codes)
    assert sum(v["count"] for v in result["facets"]["category"]) == result["total"]


def test_pagination_is_stable_and_disjoint(client, tokens):
    total = _search(client, tokens["steward"])["total"]
    pages = [_search(client, tokens["steward"], page=p, page_size=7) for p in range(1, total // 7 + 2)]
    codes = [h["code"] for page in pages for h in page["items"]]
    assert len(codes) == total == len(set(codes))
    assert _search(client, tokens["steward"], page=1000, page_size=7)["items"] == []


def test_sort_options(client, tokens):
    by_date = _search(client, tokens["steward"], sort="-release_date")["items"]
    dates = [h["release_date"] for h in by_date if h["release_date"]]
    assert dates == sorted(dates, reverse=True)
    by_name = [h["name"] for h in _search(client, tokens["steward"], q="信用", sort="name")["items"]]
    assert by_name == sorted(by_name)


def test_highlights_mark_the_query_words(client, tokens):
    hit = _search(client, tokens["steward"], q="信用")["items"][0]
    assert "<em>信用</em>" in hit["highlights"]["name"]


def test_a_new_dataset_is_found_at_once_and_a_withdrawn_one_disappears(client, tokens, elements):
    assert _search(client, tokens["steward"], q="便民驿站")["total"] == 0
    created = client.post("/api/v1/datasets", json=dataset_body(elements), headers=bearer(tokens["gaj_publisher"]))
    code = created.json()["code"]
    assert [h["code"] for h in _search(client, tokens["steward"], q="便民驿站")["items"]] == [code]
    # Item names are searchable too, and a change is reindexed.
    client.patch(f"/api/v1/datasets/{code}", json={"items": [
        item("mc", "名称", elements["测试名称"], is_key=True), item("kfsj", "开放时段", elements["测试编码"])]},
        headers=bearer(tokens["gaj_publisher"]))
    assert [h["code"] for h in _search(client, tokens["steward"], q="开放时段")["items"]] == [code]
    client.delete(f"/api/v1/datasets/{code}", params={"reason": "测试"}, headers=bearer(tokens["gaj_publisher"]))
    assert _search(client, tokens["steward"], q="便民驿站")["total"] == 0


def test_anonymous_search_sees_only_open_datasets(client, tokens):
    public = _search(client, None)
    assert public["total"] > 0
    assert {h["open_type"] for h in public["items"]} <= {"无条件开放", "受限开放"}
    assert {v["value"] for v in public["facets"]["open_type"] if v["count"]} <= {"无条件开放", "受限开放"}


def test_queries_with_operators_or_quotes_are_plain_text(client, tokens):
    for q in ['信用"', "信用 OR 1=1", "信用' & !x", "NEAR(信用", "*", "-信用", "信用)", "'; DROP TABLE datasets; --"]:
        r = client.get("/api/v1/datasets", params={"q": q}, headers=bearer(tokens["steward"]))
        assert r.status_code == 200, (q, r.text)
    assert _search(client, tokens["steward"])["total"] >= 40


def test_a_word_segmented_differently_in_the_query_still_matches(client, tokens):
    # 被执行人 is indexed in search mode (执行/行人/被执行人); the query 执行人 is cut as 执行 + 人.
    result = _search(client, tokens["steward"], q="执行人")
    assert any("被执行人" in h["name"] for h in result["items"])
