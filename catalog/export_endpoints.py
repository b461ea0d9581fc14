"""Export endpoints: DCAT (Turtle, JSON-LD) for the catalog and each dataset, and a Frictionless Data Package per
dataset. Thin: the graphs and the package are built in catalog/export.py, for what the caller may see."""
from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response

from catalog import export, service
from catalog.deps import PrincipalDep, SessionDep
from catalog.endpoints import ERRORS, DatasetCodePath


class TurtleResponse(Response):
    media_type = "text/turtle"  # Starlette adds "; charset=utf-8" to text/* types


class JSONLDResponse(Response):
    media_type = "application/ld+json"


class DataPackageResponse(Response):
    media_type = "application/json"




def _json_error(status: int) -> dict:
    """An error response documented as what it is: JSON (ErrorBody), whatever the route's own media type."""
    return {"description": ERRORS[status]["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


router = APIRouter(prefix="/api/v1", tags=["export"], responses={k: _json_error(k) for k in (401, 422)})

_TEXT = {"schema": {"type": "string"}}
_OBJECT = {"schema": {"type": "object"}}
TURTLE = {200: {"content": {"text/turtle": _TEXT}, "description": "DCAT 3 / DCAT-AP graph in Turtle"}}
JSONLD = {200: {"content": {"application/ld+json": _OBJECT}, "description": "DCAT 3 / DCAT-AP graph in JSON-LD"}}
PACKAGE = {200: {"content": {"application/json": _OBJECT}, "description": "Frictionless Data Package (v2)"}}
NOT_FOUND = {404: _json_error(404)}


def _context(request: Request, principal) -> export.ExportContext:  # noqa: ANN001
    base = str(request.base_url).rstrip("/")
    return export.ExportContext(base=base, principal=principal,
                                digest=partial(export.open_download_digest, request.app.state.gateway))


def _catalog(request: Request, session, principal):  # noqa: ANN001, ANN202
    return export.catalog_graph(session, _context(request, principal), request.app.title)


def _dataset(request: Request, session, principal, code: str):  # noqa: ANN001, ANN202
    dataset = service.get_dataset(session, principal, code)
    return export.dataset_graph(session, _context(request, principal), dataset)


@router.get("/catalog.ttl", response_class=TurtleResponse, responses=TURTLE,
            summary="目录的 DCAT 描述（Turtle）：调用方可见的全部资源（匿名：开放目录）")
def catalog_turtle(request: Request, session: SessionDep, principal: PrincipalDep) -> TurtleResponse:
    return TurtleResponse(export.to_turtle(_catalog(request, session, principal)))


@router.get("/catalog.jsonld", response_class=JSONLDResponse, responses=JSONLD,
            summary="目录的 DCAT 描述（JSON-LD）：调用方可见的全部资源（匿名：开放目录）")
def catalog_jsonld(request: Request, session: SessionDep, principal: PrincipalDep) -> JSONLDResponse:
    return JSONLDResponse(export.to_jsonld(_catalog(request, session, principal)))


@router.get("/datasets/{code}/dcat.ttl", response_class=TurtleResponse, responses=TURTLE | NOT_FOUND,
            summary="资源的 DCAT 描述（Turtle）：数据项、发行版（下载或网关）、字节数与校验和")
def dataset_turtle(code: DatasetCodePath, request: Request, session: SessionDep,
                   principal: PrincipalDep) -> TurtleResponse:
    return TurtleResponse(export.to_turtle(_dataset(request, session, principal, code)))


@router.get("/datasets/{code}/dcat.jsonld", response_class=JSONLDResponse, responses=JSONLD | NOT_FOUND,
            summary="资源的 DCAT 描述（JSON-LD）")
def dataset_jsonld(code: DatasetCodePath, request: Request, session: SessionDep,
                   principal: PrincipalDep) -> JSONLDResponse:
    return JSONLDResponse(export.to_jsonld(_dataset(request, session, principal, code)))


@router.get("/datasets/{code}/datapackage.json", response_class=DataPackageResponse, responses=PACKAGE | NOT_FOUND,
            summary="资源的 Frictionless Data Package：最新版本的下载地址与由数据元标准导出的 Table Schema")
def dataset_datapackage(code: DatasetCodePath, request: Request, session: SessionDep,
                        principal: PrincipalDep) -> DataPackageResponse:
    dataset = service.get_dataset(session, principal, code)
    return DataPackageResponse(export.to_json(export.datapackage(session, _context(request, principal), dataset)))
