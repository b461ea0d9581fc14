"""问题数据工单 (problem-data tickets) under 一数一源 and 首问责任制 (DOMAIN.md "Problem-data ticket").

A failing rule opens one ticket per (dataset, rule); later failing runs update it. The ticket is assigned to the
authoritative source department of the data element the rule judges — which may not be the department that
delivered the data — and the department that first received the problem (首问) is recorded and stays accountable.
A later version on which the rule passes verifies and closes it automatically. Every transition records who, when
and why; an illegal one is a 409 listing the allowed ones.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from catalog.auth import Principal
from catalog.errors import Conflict, NotFound, PermissionDenied
from catalog.models import AuthoritativeSource, Dataset, DatasetVersion, Department, utcnow
from catalog.permissions import check_read_dataset, require_principal
from quality.models import ProblemTicket, QualityRun, TicketEvent

OPEN, ASSIGNED, IN_PROGRESS, FIXED, VERIFIED, CLOSED, DISPUTED = (
    "open", "assigned", "in_progress", "fixed", "verified", "closed", "disputed")
ACTIVE = (OPEN, ASSIGNED, IN_PROGRESS, FIXED, DISPUTED)
STATUS_NAMES = {OPEN: "待分派", ASSIGNED: "已分派", IN_PROGRESS: "整改中", FIXED: "已整改", VERIFIED: "已核验",
                CLOSED: "已关闭", DISPUTED: "有异议"}
# to-status → who may move a ticket there from the given status.
#   assignee: the assigned (source) department · receiver: the 首问 department · steward: 大数据局
TRANSITIONS: dict[str, dict[str, set[str]]] = {
    OPEN: {ASSIGNED: {"steward", "receiver"}},
    ASSIGNED: {IN_PROGRESS: {"assignee"}, FIXED: {"assignee"}, DISPUTED: {"assignee"}},
    IN_PROGRESS: {FIXED: {"assignee"}, DISPUTED: {"assignee"}},
    FIXED: {VERIFIED: {"receiver", "steward"}, IN_PROGRESS: {"receiver", "steward"}},
    DISPUTED: {ASSIGNED: {"steward"}, CLOSED: {"steward"}},  # upheld → back to the source; dismissed → closed
    VERIFIED: {CLOSED: {"receiver", "steward"}},
    CLOSED: {},
}
# Local rules: forwarded within 2 working days, corrected within 5 (DOMAIN.md).
DEADLINE_WORKING_DAYS = 7


def add_working_days(start: dt.datetime, days: int) -> dt.datetime:
    current = start
    while days:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def is_overdue(ticket: ProblemTicket, now: dt.datetime | None = None) -> bool:
    return ticket.status in ACTIVE and ticket.deadline < (now or utcnow())


def source_department(session: Session, dataset: Dataset, element: str | None) -> int:
    """一数一源: the element's authoritative department; the dataset's own when the element has none."""
    if element:
        src = session.get(AuthoritativeSource, element)
        if src is not None:
            return src.department_id
    return dataset.department_id


def _event(ticket: ProblemTicket, actor: Principal | None, before: str | None, after: str, comment: str) -> None:
    ticket.events.append(TicketEvent(actor_user_id=actor.user_id if actor else None,
                                     actor_department_id=actor.department_id if actor else None,
                                     from_status=before, to_status=after, comment=comment))
    ticket.status = after
    ticket.updated_at = utcnow()
    if after in (VERIFIED, CLOSED):
        ticket.open_key = None  # a later failure opens a new ticket
    if after == CLOSED:
        ticket.closed_at = utcnow()


# ---------------------------------------------------------------- from quality runs
def sync_quality_tickets(session: Session, dataset: Dataset, run: QualityRun) -> dict[str, int]:
    """Open or update a ticket per failing rule; verify and close tickets whose rule now passes on a newer version."""
    stats = {"opened": 0, "updated": 0, "verified": 0}
    version = session.get(DatasetVersion, run.version_id)
    open_tickets = {t.rule_id: t for t in session.execute(
        select(ProblemTicket).where(ProblemTicket.dataset_id == dataset.id, ProblemTicket.origin == "quality",
                                    ProblemTicket.open_key.is_not(None))).scalars()}
    for result in run.rule_results:
        ticket = open_tickets.get(result.rule_id)
        if result.failing:
            if ticket is None:
                ticket = _open_quality_ticket(session, dataset, run, result)
                stats["opened"] += 1
            else:
                ticket.runs_seen += 1
                stats["updated"] += 1
            ticket.failing_count, ticket.evaluated = result.failing, result.evaluated
            ticket.sample_keys = result.sample_keys
            ticket.latest_version_id, ticket.latest_run_id = run.version_id, run.id
            ticket.updated_at = utcnow()
        elif ticket is not None and _newer(session, run.version_id, ticket.latest_version_id):
            comment = f"规则在版本 v{version.version} 上通过，自动核验并关闭"
            if ticket.status in (ASSIGNED, IN_PROGRESS, DISPUTED):
                _event(ticket, None, ticket.status, FIXED, f"提供方已交付新版本 v{version.version}")
            _event(ticket, None, ticket.status, VERIFIED, comment)
            _event(ticket, None, VERIFIED, CLOSED, comment)
            ticket.latest_version_id, ticket.latest_run_id, ticket.failing_count = run.version_id, run.id, 0
            stats["verified"] += 1
    session.flush()
    return stats


def _newer(session: Session, version_id: int, than_id: int | None) -> bool:
    if than_id is None:
        return True
    numbers = dict(session.execute(select(DatasetVersion.id, DatasetVersion.version)
                                   .where(DatasetVersion.id.in_([version_id, than_id]))).all())
    return numbers.get(version_id, 0) > numbers.get(than_id, 0)


def _open_quality_ticket(session: Session, dataset: Dataset, run: QualityRun, result) -> ProblemTicket:  # noqa: ANN001
    now = utcnow()
    ticket = ProblemTicket(
        dataset_id=dataset.id, origin="quality", rule_id=result.rule_id, open_key=f"{dataset.id}:{result.rule_id}",
        title=f"{dataset.name}：{result.description}", description=result.description, dimension=result.dimension,
        # Identifier and consistency rules read (key, item): the ticket is about the item, not the key it joins on.
        item_code=result.columns[-1] if result.kind.startswith("id_") or result.kind == "consistency" else result.columns[0],
        element_identifier=result.element_identifier,
        assigned_department_id=source_department(session, dataset, result.element_identifier),
        first_receiver_department_id=dataset.department_id, status=OPEN, runs_seen=1,
        deadline=add_working_days(now, DEADLINE_WORKING_DAYS), created_at=now, updated_at=now, sample_keys=[])
    session.add(ticket)
    _event(ticket, None, None, OPEN, f"质量检查发现问题（规则 {result.rule_id}），首问部门：资源提供方")
    _event(ticket, None, OPEN, ASSIGNED, "按一数一源分派至该数据项的权威来源部门")
    session.flush()  # open_key's unique index refuses a second open ticket from a concurrent run
    return ticket


# ---------------------------------------------------------------- reports from consumers and the public
def report_problem(session: Session, principal: Principal | None, dataset: Dataset, item_code: str | None,
                   description: str, contact: str | None) -> ProblemTicket:
    check_read_dataset(principal, dataset)
    if principal is None and not contact:
        raise PermissionDenied("匿名反馈需留下联系方式 contact，以便告知处理结果")
    element = None
    if item_code:
        item = next((i for i in dataset.items if i.code == item_code), None)
        if item is None:
            raise NotFound(f"资源 {dataset.code} 没有数据项 {item_code}")
        element = item.data_element.identifier
    now = utcnow()
    ticket = ProblemTicket(
        dataset_id=dataset.id, origin="report", title=f"{dataset.name}：数据异议", description=description,
        item_code=item_code, element_identifier=element,
        assigned_department_id=source_department(session, dataset, element),
        first_receiver_department_id=dataset.department_id, status=OPEN,
        reporter_user_id=principal.user_id if principal else None, reporter_contact=contact,
        deadline=add_working_days(now, DEADLINE_WORKING_DAYS), created_at=now, updated_at=now, sample_keys=[])
    session.add(ticket)
    _event(ticket, principal, None, OPEN, "数据异议反馈：" + description[:200])
    _event(ticket, None, OPEN, ASSIGNED, "按一数一源转交该数据项的权威来源部门，首问部门跟踪至办结")
    session.flush()
    return ticket


# ---------------------------------------------------------------- acting on a ticket
def roles_on(principal: Principal, ticket: ProblemTicket) -> set[str]:
    roles = set()
    if principal.is_steward:
        roles.add("steward")
    if principal.department_id == ticket.assigned_department_id:
        roles.add("assignee")
    if principal.department_id == ticket.first_receiver_department_id:
        roles.add("receiver")
    return roles


def can_see_ticket(principal: Principal, ticket: ProblemTicket) -> bool:
    return bool(roles_on(principal, ticket)) or ticket.reporter_user_id == principal.user_id


def allowed_transitions(principal: Principal | None, ticket: ProblemTicket) -> list[str]:
    """The statuses this principal may move the ticket to now (none for the reporter or the public)."""
    roles = roles_on(principal, ticket) if principal else set()
    return [to for to, who in TRANSITIONS.get(ticket.status, {}).items() if who & roles]


def list_tickets(session: Session, principal: Principal | None, status: str | None = None,
                 dataset_code: str | None = None, overdue: bool | None = None) -> list[ProblemTicket]:
    """Newest first: the steward sees all; others the tickets assigned to, first received by or reported by them.
    status: one of STATUS_NAMES or "active" (every not yet closed or verified)."""
    p = require_principal(principal)
    query = select(ProblemTicket).order_by(ProblemTicket.id.desc())
    if not p.is_steward:
        query = query.where(or_(ProblemTicket.assigned_department_id == p.department_id,
                                ProblemTicket.first_receiver_department_id == p.department_id,
                                ProblemTicket.reporter_user_id == p.user_id))
    if status == "active":
        query = query.where(ProblemTicket.status.in_(ACTIVE))
    elif status:
        query = query.where(ProblemTicket.status == status)
    if dataset_code:
        query = query.join(Dataset, Dataset.id == ProblemTicket.dataset_id).where(Dataset.code == dataset_code)
    rows = list(session.execute(query).scalars())
    if overdue is not None:
        rows = [t for t in rows if is_overdue(t) == overdue]
    return rows


def get_ticket(session: Session, principal: Principal | None, ticket_id: int) -> ProblemTicket:
    p = require_principal(principal)
    ticket = session.get(ProblemTicket, ticket_id)
    if ticket is None or not can_see_ticket(p, ticket):
        raise NotFound(f"工单 {ticket_id} 不存在")
    return ticket


def transition(session: Session, principal: Principal | None, ticket_id: int, to: str, comment: str) -> ProblemTicket:
    ticket = get_ticket(session, principal, ticket_id)
    p = require_principal(principal)
    allowed = TRANSITIONS.get(ticket.status, {})
    if to not in allowed:
        options = "、".join(f"{s}（{STATUS_NAMES[s]}）" for s in allowed) or "无（工单已办结）"
        raise Conflict(f"工单当前状态为 {ticket.status}（{STATUS_NAMES[ticket.status]}），不能转为 {to}；可转为：{options}",
                       allowed=sorted(allowed))
    if not (allowed[to] & roles_on(p, ticket)):
        raise PermissionDenied(f"只有{'、'.join(_who(w) for w in sorted(allowed[to]))}可以将工单转为 {STATUS_NAMES[to]}")
    if not comment.strip():
        raise Conflict("每次处理都须填写说明 comment（有异议时须说明数据无误的依据）")
    _event(ticket, p, ticket.status, to, comment.strip())
    session.flush()
    return ticket


def _who(role: str) -> str:
    return {"assignee": "被分派的权威来源部门", "receiver": "首问部门", "steward": "大数据局"}[role]


def escalate_overdue(session: Session, now: dt.datetime | None = None) -> int:
    """Mark overdue tickets escalated to the steward (once); returns how many were newly escalated."""
    now = now or utcnow()
    tickets = session.execute(select(ProblemTicket).where(ProblemTicket.status.in_(ACTIVE),
                                                          ProblemTicket.deadline < now,
                                                          ProblemTicket.escalated_at.is_(None))).scalars().all()
    for t in tickets:
        t.escalated_at = now
        t.events.append(TicketEvent(from_status=t.status, to_status=t.status,
                                    comment="已超过整改期限，升级至大数据局督办"))
    session.flush()
    return len(tickets)


def rectification_rate(session: Session, now: dt.datetime | None = None) -> list[dict]:
    """问题数据及时整改率 per assigned department: closed on time ÷ due (deadline passed, or closed)."""
    now = now or utcnow()
    names = dict(session.execute(select(Department.id, Department.name)).all())
    codes = dict(session.execute(select(Department.id, Department.code)).all())
    per: dict[int, list[int]] = {}
    for t in session.execute(select(ProblemTicket)).scalars():
        due = t.status == CLOSED or t.deadline < now
        if not due:
            continue
        counts = per.setdefault(t.assigned_department_id, [0, 0])
        counts[0] += 1
        if t.status == CLOSED and t.closed_at is not None and t.closed_at <= t.deadline:
            counts[1] += 1
    return [{"department_code": codes[d], "department_name": names[d], "due": due, "on_time": ok,
             "rate": round(ok / due, 4) if due else None} for d, (due, ok) in sorted(per.items())]
