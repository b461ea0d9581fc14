"""Export: DCAT (Turtle and JSON-LD) of the catalog and of each dataset, and the Frictionless Data Package, for what
the caller may see — checked by parsing them back (rdflib), validating the package and real data files with
`frictionless`, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import hashlib
import io

import frictionless
import pytest
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.compare import isomorphic
from sqlalchemy import select

from catalog.enums import DatasetStatus, OpenType
from catalog.models import Dataset
from seeds.deliveries import csv_bytes, population
from sharing.engine import build_scope, to_csv
from sharing.gateway import public_specs
from sharing.policy import masked_by_default
from tests.conftest import bearer
from tests.sharing_helpers import deliver, version_table

BASE = "http://testserver"
ODH = Namespace("https://opendata-hub.example/ns#")
# Open namespaces (rdflib's closed ones warn on DCAT 3 terms, and whenever pytest inspects them).
CSVW = Namespace("http://www.w3.org/ns/csvw#")
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCTERMS = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
RDF = Namespace("http://www.w3.org/1999/02/22-rdf-syntax-ns#")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
EU = "http://publications.europa.eu/resource/authority/"


@pytest.fixture
def delivered(db, settings):
    deliver(db, settings)


def ds_iri(code: str) -> URIRef:
    return URIRef(f"{BASE}/api/v1/datasets/{code}")


def turtle(client, url: str, token: str | None = None) -> Graph:  # noqa: ANN001
    r = client.get(url, headers=bearer(token) if token else {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/turtle; charset=utf-8"
    return Graph().parse(data=r.text, format="turtle")


def jsonld(client, url: str, token: str | None = None) -> Graph:  # noqa: ANN001
    r = client.get(url, headers=bearer(token) if token else {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/ld+json"
    return Graph().parse(data=r.text, format="json-ld")


def catalog_codes(g: Graph) -> set[str]:
    cat = URIRef(f"{BASE}/api/v1/catalog")
    return {str(g.value(d, DCTERMS.identifier)) for d in g.objects(cat, DCAT.dataset)}


def published(db, open_only: bool) -> set[str]:  # noqa: ANN001
    with db.session() as s:
        query = select(Dataset.code).where(Dataset.status == DatasetStatus.published)
        if open_only:
            query = query.where(Dataset.open_type.in_([OpenType.unconditional, OpenType.restricted]))
        return set(s.execute(query).scalars())


def distributions(g: Graph, code: str) -> dict[str, URIRef]:
    return {str(d).rsplit("#", 1)[1]: d for d in g.objects(ds_iri(code), DCAT.distribution)}


# ---------------------------------------------------------------- DCAT
def test_dataset_turtle_describes_an_open_delivered_dataset(client, delivered):
    g = turtle(client, "/api/v1/datasets/STHJ-00001/dcat.ttl")
    ds = ds_iri("STHJ-00001")
    assert (ds, RDF.type, DCAT.Dataset) in g
    assert g.value(ds, DCTERMS.identifier) == Literal("STHJ-00001")
    assert g.value(ds, DCTERMS.title) == Literal("空气质量监测站点信息", lang="zh")
    assert Literal("空气质量", lang="zh") in set(g.objects(ds, DCAT.keyword))
    publisher = g.value(ds, DCTERMS.publisher)
    assert publisher == URIRef(f"{BASE}/api/v1/departments/STHJ")
    assert (publisher, RDF.type, FOAF.Organization) in g
    assert g.value(publisher, FOAF.name) == Literal("示范市生态环境局", lang="zh")
    contact = g.value(ds, DCAT.contactPoint)
    assert g.value(contact, URIRef("http://www.w3.org/2006/vcard/ns#fn")) == Literal("林涛", lang="zh")
    assert g.value(ds, DCTERMS.accrualPeriodicity) == URIRef(EU + "frequency/IRREG")  # 不定期
    assert g.value(ds, DCTERMS.accessRights) == URIRef(EU + "access-right/PUBLIC")  # 无条件开放
    assert g.value(ds, DCAT.theme) == URIRef(EU + "data-theme/ENVI")
    assert g.value(ds, DCTERMS.issued) == Literal("2022-12-01", datatype=XSD.date)
    assert g.value(ds, ODH.shareType) == ODH["share-unconditional"]
    assert g.value(ds, ODH.securityGrade) == ODH["grade-L1"]
    assert g.value(ODH["share-unconditional"], URIRef("http://www.w3.org/2004/02/skos/core#prefLabel")) == \
        Literal("无条件共享", lang="zh")

    # The data items: a csvw schema in catalog order, each column bound to its data element standard version.
    schema = g.value(ds, DCTERMS.conformsTo)
    columns = list(Collection(g, g.value(schema, CSVW.column)))
    assert [str(g.value(c, CSVW.name)) for c in columns] == ["jczdbm", "jczdmc", "zdlxdm", "dz", "xzqhdm", "jd", "wd"]
    first = columns[0]
    assert g.value(first, CSVW.title) == Literal("监测站点编码", lang="zh")
    assert g.value(first, CSVW.required) == Literal(True)
    standard = g.value(first, DCTERMS.conformsTo)
    assert standard == URIRef(f"{BASE}/api/v1/standards/DE0601001/versions/1.0")
    assert g.value(standard, DCTERMS.identifier) == Literal("DE0601001")
    assert set(g.objects(schema, CSVW.primaryKey)) == {Literal("jczdbm")}
    jd = next(c for c in columns if str(g.value(c, CSVW.name)) == "jd")
    assert g.value(jd, CSVW.datatype) == XSD.decimal and g.value(jd, ODH.itemSource) == ODH["source-reference"]
    assert g.value(jd, ODH.sourceItem) == URIRef(f"{BASE}/api/v1/datasets/ZRZY-00001#item-jd")

    # Distributions of version 1: the open downloads; sizes and checksums are those of the bytes actually served.
    dists = distributions(g, "STHJ-00001")
    assert set(dists) == {"v1-open-csv", "v1-open-parquet", "v1-open-json"}  # anonymous: no gateway
    for fmt, media in (("csv", "text/csv"), ("parquet", "application/vnd.apache.parquet")):
        dist = dists[f"v1-open-{fmt}"]
        url = f"{BASE}/open/v1/datasets/STHJ-00001/download?format={fmt}&version=1"
        assert g.value(dist, DCAT.downloadURL) == URIRef(url)
        assert g.value(dist, DCAT.mediaType) == URIRef(f"https://www.iana.org/assignments/media-types/{media}")
        body = client.get(url).content
        assert g.value(dist, DCAT.byteSize).toPython() == len(body)
        checksum = g.value(dist, SPDX.checksum)
        assert g.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
        assert str(g.value(checksum, SPDX.checksumValue)) == hashlib.sha256(body).hexdigest()
    assert g.value(dists["v1-open-json"], DCAT.downloadURL) is None  # paged: an API, not a file
    assert g.value(dists["v1-open-csv"], DCAT.accessService) == URIRef(f"{BASE}/open/v1")


def test_anonymous_catalog_is_the_open_catalog(client, db, delivered):
    g = turtle(client, "/api/v1/catalog.ttl")
    cat = URIRef(f"{BASE}/api/v1/catalog")
    assert (cat, RDF.type, DCAT.Catalog) in g
    assert g.value(cat, DCTERMS.title) is not None
    assert g.value(g.value(cat, DCTERMS.publisher), DCTERMS.identifier) == Literal("DSJ")  # the steward
    codes = catalog_codes(g)
    assert codes == published(db, open_only=True)
    assert "GAJ-00001" not in codes and "STHJ-00001" in codes  # 禁止开放 / 无条件开放
    assert not set(g.subjects(DCTERMS.identifier, Literal("GAJ-00001")))
    # 受限开放 (SCJG-00001): the gateway after an 开放申请, never a download.
    dists = distributions(g, "SCJG-00001")
    assert dists and all("gateway" in key for key in dists)
    assert not any(g.value(d, DCAT.downloadURL) for d in dists.values())
    assert g.value(ds_iri("SCJG-00001"), DCTERMS.accessRights) == URIRef(EU + "access-right/RESTRICTED")
    # The dataset's own DCAT, its package: 404 like the rest of the API.
    for suffix in ("dcat.ttl", "dcat.jsonld", "datapackage.json"):
        r = client.get(f"/api/v1/datasets/GAJ-00001/{suffix}")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert client.get(f"/api/v1/datasets/GAJ-00001/{suffix}", headers=bearer("odh_bogus")).status_code == 401


def test_outside_user_sees_what_the_public_sees(client, db, delivered):
    r = client.post("/api/v1/public/register", json={"username": "citizen_wang", "password": "a-long-passw0rd",
                                                     "display_name": "王研究", "contact": "wang@example.edu"})
    assert r.status_code == 201
    token = client.post("/api/v1/auth/login", json={"username": "citizen_wang", "password": "a-long-passw0rd"}
                        ).json()["token"]
    assert catalog_codes(turtle(client, "/api/v1/catalog.ttl", token)) == published(db, open_only=True)
    assert client.get("/api/v1/datasets/GAJ-00001/dcat.ttl", headers=bearer(token)).status_code == 404


def test_government_catalog_has_every_published_dataset_and_gateway_distributions(client, db, tokens, delivered):
    for user in ("steward", "rsj_consumer"):
        assert catalog_codes(turtle(client, "/api/v1/catalog.ttl", tokens[user])) == published(db, open_only=False)
    g = turtle(client, "/api/v1/datasets/GAJ-00001/dcat.ttl", tokens["rsj_consumer"])
    ds = ds_iri("GAJ-00001")
    assert g.value(ds, DCTERMS.accessRights) == URIRef(EU + "access-right/NON_PUBLIC")  # 禁止开放
    assert g.value(ds, ODH.shareType) == ODH["share-conditional"]
    dists = distributions(g, "GAJ-00001")
    assert set(dists) == {f"v1-gateway-{f}" for f in ("json", "csv", "arrow", "parquet")}
    parquet = dists["v1-gateway-parquet"]
    assert g.value(parquet, DCAT.accessURL) == \
        URIRef(f"{BASE}/gateway/v1/datasets/GAJ-00001/rows?format=parquet&version=1")
    assert g.value(parquet, DCAT.accessService) == URIRef(f"{BASE}/gateway/v1")
    assert g.value(parquet, DCAT.downloadURL) is None and g.value(parquet, DCAT.byteSize) is None
    sfzhm = URIRef(f"{BASE}/api/v1/datasets/GAJ-00001#item-sfzhm")
    assert g.value(sfzhm, ODH.masked) == Literal(True) and g.value(sfzhm, ODH.maskKind) == Literal("id_number")
    # A government user gets both ways to open data: the download and the gateway.
    g = turtle(client, "/api/v1/datasets/STHJ-00001/dcat.ttl", tokens["rsj_consumer"])
    assert {"v1-open-csv", "v1-gateway-parquet"} <= set(distributions(g, "STHJ-00001"))


def test_undelivered_dataset_has_no_distributions(client):
    g = turtle(client, "/api/v1/datasets/STHJ-00001/dcat.ttl")
    assert not distributions(g, "STHJ-00001") and g.value(ds_iri("STHJ-00001"), DCAT.version) is None


def ground(g: Graph) -> set[tuple]:
    """The graph's triples with each blank node named by where it sits: our graphs' only blank nodes are the cells
    of the csvw:column lists (a fast, exact stand-in for rdflib's isomorphism check on the large catalog graphs)."""
    names = {}
    for schema, head in g.subject_objects(CSVW.column):
        node, i = head, 0
        while node != RDF.nil:
            names[node] = URIRef(f"{schema}/column-cell-{i}")
            node, i = g.value(node, RDF.rest), i + 1
    triples = {tuple(names.get(term, term) for term in triple) for triple in g}
    assert not any(isinstance(term, BNode) for triple in triples for term in triple)
    return triples


@pytest.mark.parametrize("who", [None, "steward"])
def test_jsonld_is_the_same_graph_as_turtle(client, tokens, delivered, who):
    token = tokens[who] if who else None
    for code in ("STHJ-00001", "SCJG-00001"):
        url = f"/api/v1/datasets/{code}/dcat"
        ttl, jl = turtle(client, url + ".ttl", token), jsonld(client, url + ".jsonld", token)
        assert len(ttl) > 50 and isomorphic(ttl, jl)
    ttl, jl = turtle(client, "/api/v1/catalog.ttl", token), jsonld(client, "/api/v1/catalog.jsonld", token)
    assert len(ttl) == len(jl) > 1000 and ground(ttl) == ground(jl)


def test_iris_follow_the_request_base_url(app, delivered):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="https://data.example.gov") as other:
        r = other.get("/api/v1/datasets/STHJ-00001/dcat.ttl")
    g = Graph().parse(data=r.text, format="turtle")
    ds = URIRef("https://data.example.gov/api/v1/datasets/STHJ-00001")
    assert (ds, RDF.type, DCAT.Dataset) in g
    assert all(str(d).startswith("https://data.example.gov/") for d in g.objects(ds, DCAT.distribution))


# ---------------------------------------------------------------- Data Package
def package(client, code: str, token: str | None = None) -> dict:  # noqa: ANN001
    r = client.get(f"/api/v1/datasets/{code}/datapackage.json", headers=bearer(token) if token else {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    descriptor = r.json()
    frictionless.Package(descriptor)  # raises on an invalid descriptor
    assert not list(frictionless.Package.metadata_validate(descriptor))
    return descriptor


def local_resource(descriptor: dict, path, keep_integrity: bool = True) -> frictionless.Resource:  # noqa: ANN001
    resource = dict(descriptor["resources"][0], path=path.name)
    if not keep_integrity:
        resource.pop("bytes", None)
        resource.pop("hash", None)
    return frictionless.Resource(resource, basepath=str(path.parent))


def errors(report) -> list[tuple]:  # noqa: ANN001
    return [tuple(e) for e in report.flatten(["type", "rowNumber", "fieldName"])]


def test_datapackage_of_open_data_validates_the_real_download(client, delivered, tmp_path):
    descriptor = package(client, "STHJ-00001")
    assert descriptor["name"] == "sthj-00001" and descriptor["id"] == f"{BASE}/api/v1/datasets/STHJ-00001"
    (resource,) = descriptor["resources"]
    assert resource["path"] == f"{BASE}/open/v1/datasets/STHJ-00001/download?format=csv&version=1"
    assert resource["format"] == "csv" and resource["mediatype"] == "text/csv"
    schema = resource["schema"]
    fields = {f["name"]: f for f in schema["fields"]}
    assert list(fields) == ["jczdbm", "jczdmc", "zdlxdm", "dz", "xzqhdm", "jd", "wd", "_objection"]
    assert fields["jczdbm"]["title"] == "监测站点编码"
    assert fields["jczdbm"]["constraints"] == {"required": True, "maxLength": 10, "pattern": "[0-9]{4}[A-Z]?",
                                              "unique": True}
    assert fields["zdlxdm"]["constraints"]["enum"] == ["1", "2", "3"]
    assert fields["jd"]["type"] == "number" and fields["jd"]["constraints"]["minimum"] == -180
    assert schema["primaryKey"] == ["jczdbm"]

    body = client.get(resource["path"].removeprefix(BASE)).content
    assert resource["bytes"] == len(body) and resource["hash"] == "sha256:" + hashlib.sha256(body).hexdigest()
    path = tmp_path / "sthj.csv"
    path.write_bytes(body)
    report = local_resource(descriptor, path).validate()
    assert report.valid, errors(report)

    # Deliberately wrong rows fail, each on the constraint it breaks.
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    header = rows[0]
    rows[3][header.index("zdlxdm")] = "9"  # not in the code list
    rows[4][header.index("jczdbm")] = rows[5][header.index("jczdbm")]  # key duplicated
    rows[6][header.index("jd")] = "东经116度"  # not a number
    rows[7][header.index("wd")] = "95.5"  # beyond the value range
    rows[8][header.index("xzqhdm")] = "11010"  # breaks the pattern and the length
    rows[9][header.index("jczdmc")] = ""  # required
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(out.getvalue().encode("utf-8"))
    report = local_resource(descriptor, bad, keep_integrity=False).validate()
    assert not report.valid
    found = {(kind, field) for kind, _row, field in errors(report)}
    assert {("constraint-error", "zdlxdm"), ("type-error", "jd"), ("constraint-error", "wd"),
            ("constraint-error", "xzqhdm"), ("constraint-error", "jczdmc")} <= found
    assert any(kind in ("unique-error", "primary-key") for kind, _field in found)
    # The unchanged file with the wrong hash fails too: the package pins what it describes.
    assert not local_resource(dict(descriptor, resources=[dict(resource, hash="sha256:" + "0" * 64)]),
                              path).validate().valid


def test_datapackage_masked_fields_drop_what_masking_breaks(client, db, settings, tokens, delivered, tmp_path):
    # 公安局 delivers corrected data, so every remaining failure would be the schema's fault.
    r = client.post("/api/v1/datasets/GAJ-00001/collections", headers=bearer(tokens["gaj_publisher"]),
                    files={"file": ("人口基本信息.csv", csv_bytes(population(corrected=True)), "text/csv")})
    assert r.status_code == 201, r.text
    descriptor = package(client, "GAJ-00001", tokens["steward"])
    (resource,) = descriptor["resources"]
    assert resource["path"] == f"{BASE}/gateway/v1/datasets/GAJ-00001/rows?format=parquet&version=2"
    assert "bytes" not in resource and "hash" not in resource  # depends on the grant
    fields = {f["name"]: f for f in resource["schema"]["fields"]}
    with db.session() as s:
        items = s.execute(select(Dataset).where(Dataset.code == "GAJ-00001")).unique().scalar_one().items
        masked = {i.code for i in items if masked_by_default(i)}
        specs = public_specs(items)
    assert {"sfzhm", "xm"} <= masked
    for code, f in fields.items():
        if code in masked:
            assert f["x-masked"] is True and f["type"] == "string"
            assert set(f.get("constraints", {})) <= {"required"}
        else:
            assert "x-masked" not in f
    assert fields["sfzhm"]["x-mask-kind"] == "id_number" and "primaryKey" not in resource["schema"]

    # What a grant of every field with default masking serves, as the gateway's CSV: valid against the schema.
    scope = build_scope(version_table(db, settings, "GAJ-00001"), specs, None)
    path = tmp_path / "gaj.csv"
    path.write_bytes(to_csv(scope, bom=True))
    csv_descriptor = dict(descriptor, resources=[dict(resource, format="csv", mediatype="text/csv",
                                                      encoding="utf-8")])
    report = local_resource(csv_descriptor, path).validate()
    assert report.valid, errors(report)
    # Had the standard's pattern been kept on the masked ID number, every row would fail.
    fields["sfzhm"]["constraints"]["pattern"] = r"[1-9][0-9]{5}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])[0-9]{2}[0-9]{3}[0-9X]"
    report = local_resource(csv_descriptor, path).validate()
    assert not report.valid and {e[0] for e in errors(report)} == {"constraint-error"}


def test_datapackage_without_a_way_to_the_data_describes_the_table(client, tokens):
    descriptor = package(client, "STHJ-00002")  # open, but not collected yet
    (resource,) = descriptor["resources"]
    names = [f["name"] for f in resource["schema"]["fields"]]
    assert resource["data"] == [names] and "path" not in resource
    assert resource["schema"]["primaryKey"] == ["jczdbm", "jcsj"]
    assert frictionless.Resource(resource).validate().valid
    dt_field = next(f for f in resource["schema"]["fields"] if f["name"] == "jcsj")
    assert dt_field["type"] == "datetime"
    descriptor = package(client, "SCJG-00001")  # 受限开放 but not collected: nothing to point at
    assert "data" in descriptor["resources"][0]
