"""HTTP layer of 问题数据工单: list, read, act on tickets; report a problem; 问题数据及时整改率."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from catalog import service
from catalog.deps import PrincipalDep, SessionDep
from catalog.endpoints import ERRORS, DatasetCodePath, PageNo, PageSize
from catalog.models import Dataset, DatasetVersion
from catalog.permissions import check_read_catalog, require_principal
from catalog.repository import department_and_user_names
from catalog.schemas import Page
from quality import tickets
from quality.models import ProblemTicket
from quality.schemas import (
    RectificationIndicator,
    RectificationOut,
    ReportIn,
    TicketEventOut,
    TicketOut,
    TransitionIn,
)

router = APIRouter(prefix="/api/v1", tags=["tickets"], responses={k: ERRORS[k] for k in (400, 401, 403, 404, 409, 422)})
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def ticket_out(session, principal, t: ProblemTicket, names: tuple[dict[int, str], dict[int, str]] | None = None
               ) -> TicketOut:
    dataset = session.get(Dataset, t.dataset_id)
    depts, users = names or department_and_user_names(session)
    version = session.get(DatasetVersion, t.latest_version_id).version if t.latest_version_id else None
    allowed = tickets.allowed_transitions(principal, t)
    return TicketOut(
        id=t.id, dataset_code=dataset.code, dataset_name=dataset.name, origin=t.origin, rule_id=t.rule_id,
        title=t.title, description=t.description, dimension=t.dimension, item_code=t.item_code,
        element=t.element_identifier, status=t.status, status_name=tickets.STATUS_NAMES[t.status],
        assigned_department=depts[t.assigned_department_id],
        first_receiver_department=depts[t.first_receiver_department_id], failing_count=t.failing_count,
        evaluated=t.evaluated, sample_keys=t.sample_keys or [], latest_version=version, latest_run_id=t.latest_run_id,
        runs_seen=t.runs_seen, deadline=t.deadline, overdue=tickets.is_overdue(t), escalated_at=t.escalated_at,
        created_at=t.created_at, updated_at=t.updated_at, closed_at=t.closed_at, allowed_transitions=allowed,
        events=[TicketEventOut(at=e.at, actor=users.get(e.actor_user_id), actor_department=depts.get(e.actor_department_id),
                               from_status=e.from_status, to_status=e.to_status, comment=e.comment) for e in t.events])


@router.get("/tickets", response_model=Page[TicketOut], summary="问题数据工单列表（本部门被分派、首问或反馈的；大数据局可见全部）")
def list_tickets(session: SessionDep, principal: PrincipalDep, page: PageNo = 1, page_size: PageSize = 20,
                 status: Annotated[str | None, Query(pattern="^(open|assigned|in_progress|fixed|verified|closed|disputed|active)$")] = None,
                 dataset: Annotated[str | None, Query(max_length=32)] = None,
                 overdue: bool | None = None):
    p = require_principal(principal)
    if tickets.escalate_overdue(session):  # overdue tickets escalate to the steward as soon as anyone looks
        session.commit()
    rows = tickets.list_tickets(session, p, status, dataset, overdue)
    chunk = rows[(page - 1) * page_size: page * page_size]
    names = department_and_user_names(session)
    return Page[TicketOut](total=len(rows), page=page, page_size=page_size,
                           items=[ticket_out(session, p, t, names) for t in chunk])


@router.get("/tickets/{ticket_id}", response_model=TicketOut, summary="工单详情与处理记录")
def get_ticket(ticket_id: TicketId, session: SessionDep, principal: PrincipalDep):
    ticket = tickets.get_ticket(session, principal, ticket_id)
    return ticket_out(session, principal, ticket)


@router.post("/tickets/{ticket_id}/transitions", response_model=TicketOut, summary="处理工单（状态流转，须写明说明）")
def act(ticket_id: TicketId, body: TransitionIn, session: SessionDep, principal: PrincipalDep):
    ticket = tickets.transition(session, principal, ticket_id, body.to, body.comment)
    session.commit()
    return ticket_out(session, principal, ticket)


@router.post("/datasets/{code}/problems", response_model=TicketOut, status_code=201,
             summary="反馈数据问题（数据异议）：转交权威来源部门，首问部门跟踪至办结")
def report(code: DatasetCodePath, body: ReportIn, session: SessionDep, principal: PrincipalDep):
    dataset = service.get_dataset(session, principal, code)
    ticket = tickets.report_problem(session, principal, dataset, body.item_code, body.description, body.contact)
    session.commit()
    return ticket_out(session, principal, ticket)


@router.get("/indicators/rectification", response_model=RectificationIndicator, tags=["indicators"],
            summary="问题数据及时整改率（按被分派部门与全市）")
def rectification(session: SessionDep, principal: PrincipalDep):
    check_read_catalog(principal)
    rows = [RectificationOut(**r) for r in tickets.rectification_rate(session)]
    due = sum(r.due for r in rows)
    ok = sum(r.on_time for r in rows)
    overall = RectificationOut(department_code="*", department_name="全市", due=due, on_time=ok,
                               rate=round(ok / due, 4) if due else None)
    return RectificationIndicator(overall=overall, departments=rows)
