"""Who may do what: deny by default, publishers write only their own department's datasets, stewards everything."""
from __future__ import annotations

from tests.conftest import bearer
from tests.helpers import dataset_body


def _own_dataset(client, tokens, elements, user="gaj_publisher"):
    r = client.post("/api/v1/datasets", json=dataset_body(elements), headers=bearer(tokens[user]))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def test_a_publisher_cannot_register_for_another_department(client, tokens, elements):
    r = client.post("/api/v1/datasets", json=dataset_body(elements, department="SCJG"),
                    headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 403
    assert "本部门" in r.json()["message"]


def test_a_publisher_cannot_change_or_withdraw_another_departments_dataset(client, tokens, elements):
    code = _own_dataset(client, tokens, elements, "scjg_publisher")
    r = client.patch(f"/api/v1/datasets/{code}", json={"summary": "篡改"}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 403
    r = client.delete(f"/api/v1/datasets/{code}", params={"reason": "篡改"}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 403
    still = client.get(f"/api/v1/datasets/{code}", headers=bearer(tokens["steward"])).json()
    assert still["summary"] != "篡改" and still["status"] == "published"


def test_a_consumer_without_the_publisher_role_cannot_register(client, tokens, elements):
    r = client.post("/api/v1/datasets", json=dataset_body(elements), headers=bearer(tokens["rsj_consumer"]))
    assert r.status_code == 403


def test_the_steward_may_change_any_department_dataset_and_transfer_it(client, tokens, elements):
    code = _own_dataset(client, tokens, elements, "scjg_publisher")
    r = client.patch(f"/api/v1/datasets/{code}", json={"summary": "大数据局校核后的摘要", "department": "GAJ"},
                     headers=bearer(tokens["steward"]))
    assert r.status_code == 200, r.text
    assert r.json()["department"]["code"] == "GAJ"


def test_only_the_steward_may_transfer_a_dataset(client, tokens, elements):
    code = _own_dataset(client, tokens, elements, "scjg_publisher")
    r = client.patch(f"/api/v1/datasets/{code}", json={"department": "GAJ"}, headers=bearer(tokens["scjg_publisher"]))
    assert r.status_code == 403


def test_writes_without_a_token_are_unauthenticated(client, elements):
    r = client.post("/api/v1/datasets", json=dataset_body(elements))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_bad_token_is_refused_even_on_reads(client):
    r = client.get("/api/v1/departments", headers=bearer("odh_not-a-real-token"))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = client.get("/api/v1/departments", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_a_revoked_token_stops_working_on_the_next_call(client, tokens):
    login = client.post("/api/v1/auth/login", json={"username": "gaj_publisher", "password": "demo-gaj_publisher-2026"})
    assert login.status_code == 201, login.text
    token = login.json()["token"]
    assert client.get("/api/v1/me", headers=bearer(token)).json()["department"]["code"] == "GAJ"
    r = client.delete(f"/api/v1/auth/tokens/{login.json()['id']}", headers=bearer(token))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(client, tokens):
    login = client.post("/api/v1/auth/login", json={"username": "gaj_publisher", "password": "demo-gaj_publisher-2026"})
    r = client.delete(f"/api/v1/auth/tokens/{login.json()['id']}", headers=bearer(tokens["scjg_publisher"]))
    assert r.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(login.json()["token"])).status_code == 200


def test_a_wrong_password_gets_no_token(client):
    r = client.post("/api/v1/auth/login", json={"username": "gaj_publisher", "password": "wrong"})
    assert r.status_code == 401 and "token" not in r.json()
    r = client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong"})
    assert r.status_code == 401


def test_tokens_are_stored_hashed(client, db):
    login = client.post("/api/v1/auth/login", json={"username": "steward", "password": "demo-steward-2026"}).json()
    from catalog.models import ApiToken
    with db.session() as session:
        stored = session.get(ApiToken, login["id"])
        assert stored.token_hash != login["token"] and login["token"] not in stored.token_hash
        assert len(stored.token_hash) == 64


def test_anonymous_callers_see_only_the_open_catalog(client, tokens):
    everything = client.get("/api/v1/datasets", params={"page_size": 100}, headers=bearer(tokens["steward"])).json()
    public = client.get("/api/v1/datasets", params={"page_size": 100}).json()
    assert 0 < public["total"] < everything["total"]
    assert {h["open_type"] for h in public["items"]} <= {"无条件开放", "受限开放"}
    closed = next(h for h in everything["items"] if h["open_type"] == "禁止开放")
    assert client.get(f"/api/v1/datasets/{closed['code']}").status_code == 404
    assert client.get(f"/api/v1/datasets/{closed['code']}", headers=bearer(tokens["rsj_consumer"])).status_code == 200


def test_a_withdrawn_dataset_is_visible_only_to_its_department_and_the_steward(client, tokens, elements):
    code = _own_dataset(client, tokens, elements)
    assert client.delete(f"/api/v1/datasets/{code}", params={"reason": "资源合并"},
                         headers=bearer(tokens["gaj_publisher"])).status_code == 200
    assert client.get(f"/api/v1/datasets/{code}", headers=bearer(tokens["scjg_publisher"])).status_code == 404
    own = client.get(f"/api/v1/datasets/{code}", headers=bearer(tokens["gaj_publisher"]))
    assert own.status_code == 200 and own.json()["status"] == "withdrawn" and own.json()["withdrawn_reason"] == "资源合并"
    assert client.get(f"/api/v1/datasets/{code}", headers=bearer(tokens["steward"])).status_code == 200
    r = client.patch(f"/api/v1/datasets/{code}", json={"summary": "x"}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 409


def test_only_admins_manage_departments(client, tokens):
    body = {"code": "XFJ", "name": "示范市信访局", "short_name": "信访局"}
    assert client.post("/api/v1/departments", json=body, headers=bearer(tokens["gaj_publisher"])).status_code == 403
    r = client.post("/api/v1/departments", json=body, headers=bearer(tokens["steward"]))
    assert r.status_code == 201, r.text
    assert client.post("/api/v1/departments", json=body, headers=bearer(tokens["steward"])).status_code == 409
    assert client.get("/api/v1/departments/XFJ", headers=bearer(tokens["rsj_consumer"])).json()["name"] == "示范市信访局"
