"""Security of the sharing gateway and its approvals. Every case asserts the refusal AND that no protected value —
a plain ID number, a value of an ungranted column, a row outside the grant's filter — appears in the response."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sqlalchemy import text, update

from sharing.models import Grant, ShareRequest
from tests.conftest import bearer
from tests.sharing_helpers import ASKED, NARROWED, approved_grant, credential, decide, deliver, request, rows, version_table


@pytest.fixture
def setup(db, settings, client, tokens):
    deliver(db, settings)
    req, cred = approved_grant(client, tokens)
    truth = version_table(db, settings, "GAJ-00001")
    women = truth.filter(pc.equal(truth["xbdm"], "2"))
    protected = {
        # plain ID numbers never leave (the grant masks them); addresses (hjdz) and gender are not granted;
        # women are outside the grant's row filter, so even their masked IDs must not appear.
        "ids": [v for v in truth["sfzhm"].to_pylist() if v],
        "addresses": [v for v in truth["hjdz"].to_pylist() if v],
        "women_masked": [v[:6] + "*" * 8 + v[-4:] for v in women["sfzhm"].to_pylist() if v],
    }
    return {"req": req, "cred": cred, "grant_id": req["grant_id"], "protected": protected, "truth": truth}


def leaks(response, protected: dict) -> list[str]:
    body = response.content.decode("utf-8", errors="replace")
    found = [v for group in protected.values() for v in group if v in body]
    return found[:3]


def refused(response, status: int, protected: dict, error: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert not leaks(response, protected)
    if error:
        assert response.json()["error"] == error


# --- credentials -------------------------------------------------------------------------------------------------

def test_no_credential(client, setup):
    r = client.get("/gateway/v1/datasets/GAJ-00001/rows")
    refused(r, 401, setup["protected"], "invalid_token")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_garbage_credential(client, setup):
    refused(rows(client, "odg_not-a-real-credential"), 401, setup["protected"], "invalid_token")


def test_tampered_credential(client, setup):
    cred = setup["cred"]
    tampered = cred[:-3] + ("aaa" if not cred.endswith("aaa") else "bbb")
    refused(rows(client, tampered), 401, setup["protected"], "invalid_token")


def test_user_api_token_is_not_a_gateway_credential(client, tokens, setup):
    """Identity comes only from a grant credential: not even the steward's API token reads through the gateway."""
    refused(rows(client, tokens["steward"]), 401, setup["protected"], "invalid_token")


def test_department_claims_in_headers_are_ignored(client, setup):
    r = client.get("/gateway/v1/datasets/GAJ-00001/rows", headers={"X-Department": "GAJ", "X-User": "steward"})
    refused(r, 401, setup["protected"], "invalid_token")


def test_revoked_credential(client, tokens, setup):
    r = client.post(f"/api/v1/grants/{setup['grant_id']}/credentials/1/revoke", headers=bearer(tokens["rsj_consumer"]))
    assert r.status_code == 200
    refused(rows(client, setup["cred"]), 401, setup["protected"], "invalid_token")


def test_replay_of_a_cursor_after_revocation(client, tokens, setup):
    first = rows(client, setup["cred"], limit=10).json()
    client.post(f"/api/v1/grants/{setup['grant_id']}/revoke", json={"reason": "停止合作"},
                headers=bearer(tokens["steward"]))
    refused(rows(client, setup["cred"], limit=10, cursor=first["next_cursor"]), 401, setup["protected"],
            "invalid_token")


def test_expired_grant(client, db, setup):
    with db.session() as s:
        s.execute(update(Grant).where(Grant.id == setup["grant_id"])
                  .values(valid_until=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    r = rows(client, setup["cred"])
    refused(r, 401, setup["protected"], "invalid_token")
    assert "过期" in r.json()["message"]


# --- BOLA: other departments' grants, requests, datasets ----------------------------------------------------------

def test_credential_for_another_dataset_is_insufficient_scope(client, setup):
    r = rows(client, setup["cred"], code="SCJG-00001")
    refused(r, 403, setup["protected"], "insufficient_scope")
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_credential_for_an_unknown_dataset_is_not_found(client, setup):
    refused(rows(client, setup["cred"], code="GAJ-99999"), 404, setup["protected"])


def test_another_department_cannot_see_the_grant_or_request(client, tokens, setup):
    for path in (f"/api/v1/grants/{setup['grant_id']}", f"/api/v1/share-requests/{setup['req']['id']}",
                 f"/api/v1/grants/{setup['grant_id']}/credentials"):
        refused(client.get(path, headers=bearer(tokens["wjw_publisher"])), 404, setup["protected"], "not_found")


def test_another_department_cannot_take_a_credential_for_the_grant(client, tokens, setup):
    r = client.post(f"/api/v1/grants/{setup['grant_id']}/credentials", headers=bearer(tokens["mzj_user"]))
    refused(r, 404, setup["protected"], "not_found")
    assert "odg_" not in r.text


def test_provider_cannot_take_the_consumers_credential(client, tokens, setup):
    r = client.post(f"/api/v1/grants/{setup['grant_id']}/credentials", headers=bearer(tokens["gaj_publisher"]))
    refused(r, 403, setup["protected"], "forbidden")


# --- scope: columns, filters, sorting ----------------------------------------------------------------------------

def test_select_an_ungranted_column(client, setup):
    refused(rows(client, setup["cred"], columns="sfzhm,hjdz"), 403, setup["protected"], "insufficient_scope")


def test_filter_on_an_ungranted_column(client, setup):
    """Filtering by gender would let the consumer count women, who are outside its grant."""
    refused(rows(client, setup["cred"], filter=["xbdm:eq:2"]), 403, setup["protected"], "insufficient_scope")


def test_sort_on_an_ungranted_column(client, setup):
    refused(rows(client, setup["cred"], sort="hjdz"), 403, setup["protected"], "insufficient_scope")


def test_filter_on_a_masked_column(client, setup):
    """An exact match on a masked ID number would confirm the hidden digits."""
    some_id = setup["protected"]["ids"][5]
    refused(rows(client, setup["cred"], filter=[f"sfzhm:eq:{some_id}"]), 403, setup["protected"],
            "insufficient_scope")


def test_sort_on_a_masked_column(client, setup):
    refused(rows(client, setup["cred"], sort="-xm"), 403, setup["protected"], "insufficient_scope")


def test_internal_columns_are_not_addressable(client, setup):
    for params in ({"filter": ["__pos:ge:0"]}, {"sort": "__pos"}, {"columns": "__pos"}):
        r = rows(client, setup["cred"], **params)
        assert r.status_code in (400, 403), (params, r.text)
        assert not leaks(r, setup["protected"])


def test_or_injection_cannot_widen_the_grant_filter(client, setup):
    """No OR exists: a value that tries one is a literal, and the grant's filter is always ANDed in."""
    for value in ("110105' OR '1'='1", "110105 OR 1=1", "110105|110101"):
        r = rows(client, setup["cred"], filter=[f"hjdxzqhdm:eq:{value}"], limit=1000)
        assert r.status_code == 200 and r.json()["total"] == 0 and not leaks(r, setup["protected"])
    widened = rows(client, setup["cred"], filter=["csrq:lt:1970-01-01"], limit=1000)
    assert widened.status_code == 200 and widened.json()["total"] == 0  # born before 1970 is outside the grant


def test_sql_injection_through_column_names_and_values(client, setup):
    for params in ({"columns": "sfzhm);DROP TABLE grants;--"}, {"filter": ["xm' OR 1=1 --:eq:x"]},
                   {"sort": "csrq; DELETE FROM audit_log"}, {"filter": ["csrq:ge:1970-01-01' OR '1'='1"]}):
        r = rows(client, setup["cred"], **params)
        assert r.status_code in (400, 403), (params, r.text)
        assert not leaks(r, setup["protected"])
    assert rows(client, setup["cred"]).status_code == 200  # nothing was dropped


def test_counts_respect_the_scope(client, setup):
    truth = setup["truth"]
    men = truth.filter(pc.equal(truth["xbdm"], "1"))
    in_scope = men.filter(pc.greater_equal(men["csrq"], pa.scalar(dt.date(1970, 1, 1)))).num_rows
    r = rows(client, setup["cred"], limit=1)
    assert r.json()["total"] == in_scope == int(r.headers["x-total-count"]) < truth.num_rows


# --- paging --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [10**9, 0, -5])
def test_bad_page_sizes(client, setup, limit):
    refused(rows(client, setup["cred"], limit=limit), 400, setup["protected"], "invalid_request")


@pytest.mark.parametrize("cursor", ["garbage", "-1", "eyJvIjotMTB9.AAAA", "x" * 400])
def test_garbage_or_forged_cursors(client, setup, cursor):
    refused(rows(client, setup["cred"], cursor=cursor), 400, setup["protected"], "invalid_request")


# The rows endpoint reads its query by hand (sharing/gateway_endpoints.rows_query): every malformed value is still the
# API's 422 validation_error naming the parameter, and nothing is served.
@pytest.mark.parametrize("params, name", [
    ({"format": "xml"}, "format"),
    ({"format": ""}, "format"),
    ({"limit": "ten"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"limit": "1e3"}, "limit"),
    ({"limit": str(2**62 + 1)}, "limit"),
    ({"version": "0"}, "version"),
    ({"version": str(2**31)}, "version"),
    ({"version": "1.5"}, "version"),
    ({"columns": "a" * 2001}, "columns"),
    ({"sort": "s" * 301}, "sort"),
    ({"cursor": "c" * 513}, "cursor"),
    ({"filter": [f"xbdm:eq:{i}" for i in range(21)]}, "filter"),
])
def test_malformed_query_parameters(client, setup, params, name):
    r = rows(client, setup["cred"], **params)
    refused(r, 422, setup["protected"], "validation_error")
    assert r.json()["detail"][0]["loc"] == ["query", name]
    assert name in r.json()["message"]


def test_query_parameters_as_documented_and_read(client, setup):
    documented = {p["name"]: p for p in client.get("/openapi.json").json()["paths"][
        "/gateway/v1/datasets/{code}/rows"]["get"]["parameters"] if p["in"] == "query"}
    assert set(documented) == {"format", "columns", "filter", "sort", "limit", "cursor", "version"}
    assert documented["limit"]["schema"]["type"] == "integer" and documented["filter"]["schema"]["type"] == "array"
    # 20 filters are accepted; a repeated single-valued parameter counts by its last value; padded integers parse.
    twenty = rows(client, setup["cred"], filter=["csrq:ge:1970-01-01"] * 20, limit=["500", " 3 "], version=" 1")
    assert twenty.status_code == 200, twenty.text
    assert twenty.json()["count"] == 3 and twenty.json()["version"] == 1
    assert not leaks(twenty, setup["protected"])

def test_cursor_from_another_query_is_refused(client, setup):
    first = rows(client, setup["cred"], limit=10, sort="csrq").json()
    r = rows(client, setup["cred"], limit=10, cursor=first["next_cursor"])  # same cursor, different sort
    refused(r, 400, setup["protected"], "invalid_request")


# --- quotas ----------------------------------------------------------------------------------------------------------

def test_requests_per_minute_quota(client, db, setup):
    with db.session() as s:
        s.execute(update(Grant).where(Grant.id == setup["grant_id"]).values(requests_per_minute=2))
    assert rows(client, setup["cred"], limit=1).status_code == 200
    assert rows(client, setup["cred"], limit=1).status_code == 200
    r = rows(client, setup["cred"], limit=1)
    refused(r, 429, setup["protected"], "rate_limited")
    assert int(r.headers["retry-after"]) >= 1


def test_rows_per_day_quota(client, db, setup):
    with db.session() as s:
        s.execute(update(Grant).where(Grant.id == setup["grant_id"]).values(rows_per_day=15))
    first = rows(client, setup["cred"], limit=10).json()
    assert len(first["rows"]) == 10
    second = rows(client, setup["cred"], limit=10, cursor=first["next_cursor"]).json()
    assert len(second["rows"]) == 5  # trimmed to what is left today
    r = rows(client, setup["cred"], limit=10, cursor=second["next_cursor"])
    refused(r, 429, setup["protected"], "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 86400  # until midnight (UTC+8)


# --- approvals -------------------------------------------------------------------------------------------------------

def test_unmasked_without_steward_approval_gives_nothing_in_plain_text(client, tokens, setup):
    req = request(client, tokens["rsj_consumer"], unmasked_fields=["sfzhm"])
    req = decide(client, tokens["gaj_publisher"], req["id"], {"action": "approve"})
    assert req["status"] == "pending_steward" and req["grant_id"] is None
    # The provider cannot finish the steward's step.
    r = client.post(f"/api/v1/share-requests/{req['id']}/decisions", json={"action": "approve"},
                    headers=bearer(tokens["gaj_publisher"]))
    refused(r, 403, setup["protected"], "forbidden")
    # The earlier (masked) credential still returns masked values only.
    assert not leaks(rows(client, setup["cred"], limit=1000), setup["protected"])


def test_approver_cannot_widen(client, tokens, setup):
    req = request(client, tokens["rsj_consumer"])
    later = (dt.date.fromisoformat(ASKED["valid_until"]) + dt.timedelta(days=30)).isoformat()
    for body, field in (({"action": "approve", "fields": ["sfzhm", "xm", "hjdz"]}, "fields"),
                        ({"action": "approve", "valid_until": later}, "valid_until"),
                        ({"action": "approve", "row_filter": []}, "row_filter"),
                        ({"action": "approve", "row_filter": [{"field": "xbdm", "op": "in", "value": ["1", "2"]}]},
                         "row_filter"),
                        ({"action": "approve", "unmasked_fields": ["sfzhm"]}, "unmasked_fields")):
        r = client.post(f"/api/v1/share-requests/{req['id']}/decisions", json=body,
                        headers=bearer(tokens["gaj_publisher"]))
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["type"] == "approval.widen" and r.json()["detail"][0]["loc"][-1] == field
    assert client.get(f"/api/v1/share-requests/{req['id']}", headers=bearer(tokens["rsj_consumer"])
                      ).json()["status"] == "submitted"


def test_publisher_cannot_approve_another_departments_request(client, tokens, setup):
    req = request(client, tokens["rsj_consumer"])
    r = client.post(f"/api/v1/share-requests/{req['id']}/decisions", json=NARROWED,
                    headers=bearer(tokens["scjg_publisher"]))
    refused(r, 404, setup["protected"], "not_found")  # SCJG has no part in it: not even its existence
    r = client.post(f"/api/v1/share-requests/{req['id']}/decisions", json={"action": "approve"},
                    headers=bearer(tokens["rsj_consumer"]))
    refused(r, 403, setup["protected"], "forbidden")  # the consumer cannot approve its own request
    assert client.get(f"/api/v1/share-requests/{req['id']}", headers=bearer(tokens["rsj_consumer"])
                      ).json()["status"] == "submitted"


def test_body_cannot_claim_another_consumer_department(client, tokens, setup):
    """The consumer department is the caller's own, whatever the body says."""
    r = client.post("/api/v1/share-requests", json={**ASKED, "consumer_department": "WJW"},
                    headers=bearer(tokens["rsj_consumer"]))
    assert r.status_code in (201, 422)
    if r.status_code == 201:
        assert r.json()["consumer_department"] == "示范市人力资源和社会保障局"


# --- audit -----------------------------------------------------------------------------------------------------------

def test_audit_visibility_follows_the_departments(client, tokens, setup):
    rows(client, setup["cred"], limit=5)
    def seen(user):
        return client.get("/api/v1/audit", params={"page_size": 100}, headers=bearer(tokens[user])).json()["items"]
    assert any(e["action"] == "rows" for e in seen("rsj_consumer"))  # the consumer sees its own calls
    assert any(e["action"] == "rows" for e in seen("gaj_publisher"))  # the provider sees the use of its data
    assert seen("wjw_publisher") == []  # a third department sees nothing of it


def test_audit_log_edited_in_the_database_fails_verification(client, db, setup):
    from sharing.audit import verify

    rows(client, setup["cred"], limit=5)
    with db.session() as s:
        assert verify(s).ok
        target = s.execute(text("SELECT seq FROM audit_log WHERE action = 'rows' ORDER BY seq LIMIT 1")).scalar_one()
        s.execute(text("UPDATE audit_log SET status = 403 WHERE seq = :seq"), {"seq": target})
    with db.session() as s:
        result = verify(s)
    assert not result.ok and result.problems[0].seq == target


def test_grant_of_a_withdrawn_request_status_cannot_be_reused(client, db, tokens, setup):
    """A request's status is the platform's: a consumer cannot approve by editing what it holds."""
    with db.session() as s:
        assert s.get(ShareRequest, setup["req"]["id"]).status == "approved"
    r = client.post(f"/api/v1/share-requests/{setup['req']['id']}/decisions", json={"action": "approve"},
                    headers=bearer(tokens["steward"]))
    refused(r, 409, setup["protected"], "conflict")
    assert credential(client, tokens["rsj_consumer"], setup["grant_id"]).startswith("odg_")


# --- the fast path (sharing/gateway_endpoints.GatewayFastPath) answers as the FastAPI route would --------------------

def test_fast_path_answers_exactly_as_the_route(db, settings, client, setup):
    """The same calls through the fast path (the app as served) and through FastAPI's route (the app without the
    middleware): same status, body and headers — pages, refusals, malformed queries alike."""
    from fastapi.testclient import TestClient

    from catalog.app import create_app
    from sharing.gateway_endpoints import GatewayFastPath

    routed_app = create_app(settings, database=db)
    routed_app.user_middleware = [m for m in routed_app.user_middleware if m.cls is not GatewayFastPath]
    assert len(routed_app.user_middleware) == len(client.app.user_middleware) - 1
    calls = [
        ({"limit": 5}, setup["cred"]),
        ({"limit": 5, "columns": "sfzhm,csrq", "sort": "-csrq"}, setup["cred"]),
        ({"format": "csv", "limit": 3}, setup["cred"]),
        ({"columns": "hjdz"}, setup["cred"]),          # ungranted column: 403
        ({"limit": 10**9}, setup["cred"]),             # 400
        ({"limit": "ten"}, setup["cred"]),             # 422
        ({"limit": 5}, "odg_not-a-real-credential"),   # 401
    ]
    with TestClient(routed_app) as routed:
        for params, cred in calls:
            fast, slow = rows(client, cred, **params), rows(routed, cred, **params)
            assert (fast.status_code, fast.content) == (slow.status_code, slow.content), params
            keep = {"content-type", "www-authenticate", "x-total-count", "x-dataset-version", "x-next-cursor"}
            assert {k: v for k, v in fast.headers.items() if k in keep} == \
                   {k: v for k, v in slow.headers.items() if k in keep}, params
            assert not leaks(fast, setup["protected"])


def test_fast_path_passes_on_what_it_does_not_serve(client, setup):
    r = client.get("/gateway/v1/datasets/not-a-code/rows", headers=bearer(setup["cred"]))  # FastAPI's path check
    refused(r, 422, setup["protected"], "validation_error")
    r = client.post("/gateway/v1/datasets/GAJ-00001/rows", headers=bearer(setup["cred"]))
    assert r.status_code == 405 and not leaks(r, setup["protected"])
