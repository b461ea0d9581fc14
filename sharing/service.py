"""Share requests (共享申请) and open-data applications (开放申请): creation, decisions, grants, credentials.

Rules (DOMAIN.md "Share request"): 无条件共享 is approved by the platform at once; 有条件共享 goes to the provider
department; L3–L4 data, or plain text of a field masked by default, needs the steward's approval after the provider's;
不予共享 is refused at creation with its legal basis. An approver may narrow the scope, never widen it. Every move is
recorded (share_decisions) and appended to the hash-chained audit log in the same transaction.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.auth import Principal
from catalog.collection import target_schema
from catalog.enums import DatasetStatus, OpenType, Role, SecurityGrade, ShareType
from catalog.federation.models import refuse_local_change
from catalog.errors import CatalogRuleError, Conflict, NotFound, PermissionDenied, RuleViolation
from catalog.models import Dataset, DataItem, Department, User, utcnow
from catalog.permissions import can_see_dataset, require_principal
from catalog.security import hash_token
from catalog.settings import Settings
from quality.tickets import add_working_days
from sharing.audit import append as audit_append
from sharing.engine import Condition, GatewayInputError, ScopeError, bind_conditions, parse_conditions
from sharing.models import AuditEntry, Grant, GrantCredential, ShareDecision, ShareRequest
from sharing.policy import column_specs, masked_by_default

SUBMITTED, PENDING_STEWARD, APPROVED, REJECTED, RETURNED, WITHDRAWN = (
    "submitted", "pending_steward", "approved", "rejected", "returned", "withdrawn")
STATUS_NAMES = {SUBMITTED: "待提供方审核", PENDING_STEWARD: "待大数据局审核", APPROVED: "已通过", REJECTED: "已驳回",
                RETURNED: "已退回补充", WITHDRAWN: "已撤回"}
PENDING = (SUBMITTED, PENDING_STEWARD)
# Local rules (DOMAIN.md): the provider answers in 5 working days (10 where the data is not yet published); the
# platform's review takes 2.
PROVIDER_DAYS, PROVIDER_DAYS_UNPUBLISHED, STEWARD_DAYS = 5, 10, 2
MAX_VALIDITY_DAYS = 3 * 366
DEFAULT_REQUESTS_PER_MINUTE = 600
DEFAULT_ROWS_PER_DAY = 100_000
CREDENTIAL_PREFIX = "odg_"  # tells a gateway credential from a user's API token at a glance
CHINA = dt.timezone(dt.timedelta(hours=8))


def _violation(field: str, rule: str, message: str) -> CatalogRuleError:
    return CatalogRuleError([RuleViolation(field, rule, message)])


def _end_of_day(day: dt.date) -> dt.datetime:
    """A validity end date includes its whole day, in the platform's time zone (UTC+8)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=CHINA).astimezone(dt.timezone.utc)


def _today() -> dt.date:
    return utcnow().astimezone(CHINA).date()


# --- scope validation -------------------------------------------------------------------------------------------

def _items(dataset: Dataset) -> list[DataItem]:
    return sorted(dataset.items, key=lambda i: i.position)


def _schema(dataset: Dataset) -> pa.Schema:
    return target_schema(_items(dataset))


def _check_fields(dataset: Dataset, fields: Sequence[str], name: str) -> list[str]:
    codes = {i.code for i in dataset.items}
    seen: list[str] = []
    for code in fields:
        if code not in codes:
            raise _violation(name, "share.unknown_field", f"{name}: 资源 {dataset.code} 没有数据项 {code}")
        if code in seen:
            raise _violation(name, "share.duplicate_field", f"{name}: 数据项 {code} 重复")
        seen.append(code)
    return seen


def _check_filter(dataset: Dataset, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row filter binds against every item of the dataset (it may use items that are not delivered)."""
    try:
        conds = bind_conditions(parse_conditions(raw), _schema(dataset), allowed=None)
    except (GatewayInputError, ScopeError) as exc:
        raise _violation("row_filter", "share.bad_filter", f"row_filter: {exc.message}") from exc
    return [_condition_json(c) for c in conds]


def _condition_json(c: Condition) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        return v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v
    value = [plain(v) for v in c.value] if isinstance(c.value, (tuple, list)) else plain(c.value)
    return {"field": c.field, "op": c.op, "value": value}


def _check_unmasked(dataset: Dataset, fields: list[str], unmasked: Sequence[str]) -> list[str]:
    by_code = {i.code: i for i in dataset.items}
    out = _check_fields(dataset, unmasked, "unmasked_fields")
    for code in out:
        if code not in fields:
            raise _violation("unmasked_fields", "share.unmasked_not_requested",
                             f"unmasked_fields: {code} 不在申请的字段中")
        if not masked_by_default(by_code[code]):
            raise _violation("unmasked_fields", "share.unmasked_not_needed",
                             f"unmasked_fields: {code} 默认不脱敏，无需申请明文")
    return out


def _check_validity(valid_until: dt.date) -> dt.date:
    today = _today()
    if valid_until < today:
        raise _violation("valid_until", "share.validity_past", f"valid_until: {valid_until} 早于今天 {today}")
    if (valid_until - today).days > MAX_VALIDITY_DAYS:
        raise _violation("valid_until", "share.validity_too_long", "valid_until: 有效期最长 3 年")
    return valid_until


def needs_steward(dataset: Dataset, unmasked: Sequence[str]) -> bool:
    return dataset.security_grade in (SecurityGrade.L3, SecurityGrade.L4) or bool(unmasked)


def _narrower_filter(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    """Every condition of the current filter must stay (or an `in` keep a subset of its values); more may be added."""
    def kept(c: dict[str, Any]) -> bool:
        for d in new:
            if d == c:
                return True
            if c["op"] == d["op"] == "in" and c["field"] == d["field"] and set(map(str, d["value"])) <= set(
                    map(str, c["value"])):
                return True
        return False
    return all(kept(c) for c in old)


# --- visibility ---------------------------------------------------------------------------------------------------

def _party_roles(p: Principal, consumer_department_id: int, requester_id: int, provider_department_id: int) -> set[str]:
    """The caller's parts in a request or grant: the consumer (the requester, or a consumer of its department), the
    provider's publishers, the steward. No part at all means the object is not shown (404)."""
    roles = set()
    if p.department_id == consumer_department_id and (p.user_id == requester_id or p.has(Role.consumer)):
        roles.add("consumer")
    if p.department_id == provider_department_id and p.has(Role.publisher):
        roles.add("provider")
    if p.is_steward:
        roles.add("steward")
    return roles


def _roles_on(p: Principal, req: ShareRequest) -> set[str]:
    return _party_roles(p, req.consumer_department_id, req.requested_by_id, req.provider_department_id)


def request_roles(principal: Principal, req: ShareRequest) -> set[str]:
    """The caller's parts in a request: "consumer", "provider", "steward" (pages show the forms a part may use)."""
    return _roles_on(principal, req)


def deciding_stage(principal: Principal, req: ShareRequest) -> str | None:
    """The review stage the caller may decide now ("provider" or "steward"), or None — the rule `decide` applies."""
    roles = _roles_on(principal, req)
    if req.status == SUBMITTED and "provider" in roles:
        return "provider"
    if req.status == PENDING_STEWARD and "steward" in roles:
        return "steward"
    return None


def get_request(session: Session, principal: Principal | None, request_id: int) -> ShareRequest:
    p = require_principal(principal)
    req = session.get(ShareRequest, request_id)
    # A request the caller has no part in answers 404: its existence is not revealed.
    if req is None or not _roles_on(p, req):
        raise NotFound(f"申请 {request_id} 不存在")
    return req


def list_requests(session: Session, principal: Principal | None, box: str, status: str | None, offset: int,
                  limit: int) -> tuple[int, list[ShareRequest]]:
    p = require_principal(principal)
    query = select(ShareRequest)
    if box == "mine":
        query = query.where(ShareRequest.consumer_department_id == p.department_id)
        if not p.has(Role.consumer):
            query = query.where(ShareRequest.requested_by_id == p.user_id)
    elif box == "review":
        if p.is_steward:
            query = query.where((ShareRequest.status == PENDING_STEWARD) | (
                (ShareRequest.provider_department_id == p.department_id) & p.has(Role.publisher)))
        elif p.has(Role.publisher):
            query = query.where(ShareRequest.provider_department_id == p.department_id)
        else:
            raise PermissionDenied("只有数据提供方或大数据局可以查看待审申请")
    elif box == "all":
        if not p.is_steward:
            raise PermissionDenied("查看全部申请需要大数据局 (steward) 权限")
    if status:
        query = query.where(ShareRequest.status == status)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(ShareRequest.id.desc()).offset(offset).limit(limit)).scalars().all()
    return total, list(rows)


def grant_of(session: Session, request_id: int) -> Grant | None:
    return session.execute(select(Grant).where(Grant.request_id == request_id)).scalar_one_or_none()


# --- the audit entries of decisions ------------------------------------------------------------------------------

def _audit(session: Session, p: Principal | None, req: ShareRequest, action: str, detail: dict[str, Any],
           grant: Grant | None = None) -> None:
    audit_append(session, [{
        "kind": "decision", "action": action, "status": 0,
        "actor_user_id": p.user_id if p else None, "actor_department_id": p.department_id if p else None,
        "request_id": req.id, "grant_id": grant.id if grant else None, "dataset_id": req.dataset_id,
        "provider_department_id": req.provider_department_id, "consumer_department_id": req.consumer_department_id,
        "detail": detail,
    }])


def _record(session: Session, req: ShareRequest, p: Principal | None, stage: str, action: str, before: str | None,
            reason: str = "", grant: Grant | None = None) -> None:
    scope = {"fields": list(req.approved_fields), "row_filter": list(req.approved_filter),
             "unmasked_fields": list(req.approved_unmasked), "valid_until": req.approved_valid_until.isoformat()}
    req.decisions.append(ShareDecision(
        actor_user_id=p.user_id if p else None, actor_department_id=p.department_id if p else None, stage=stage,
        action=action, from_status=before, to_status=req.status, reason=reason, scope=scope))
    req.updated_at = utcnow()
    session.flush()
    _audit(session, p, req, f"request.{action}", {"stage": stage, "from": before, "to": req.status,
                                                  "reason": reason, "scope": scope}, grant)


# --- creation -------------------------------------------------------------------------------------------------------

def create_request(session: Session, principal: Principal | None, dataset: Dataset, payload: Any,
                   settings: Settings) -> ShareRequest:
    p = require_principal(principal)
    kind = request_kind(session, p, dataset)
    if kind == "open" and payload.unmasked_fields:
        raise _violation("unmasked_fields", "open.no_plain_text", "unmasked_fields: 开放申请不提供明文敏感字段")
    fields = _check_fields(dataset, payload.fields, "fields")
    row_filter = _check_filter(dataset, [c.model_dump() for c in payload.row_filter])
    unmasked = _check_unmasked(dataset, fields, payload.unmasked_fields)
    valid_until = _check_validity(payload.valid_until)
    now = utcnow()
    req = ShareRequest(
        kind=kind, dataset_id=dataset.id, provider_department_id=dataset.department_id,
        consumer_department_id=p.department_id, requested_by_id=p.user_id, purpose=payload.purpose,
        scenario=payload.scenario, basis=payload.basis, expected_volume=payload.expected_volume, fields=fields,
        row_filter=row_filter, unmasked_fields=unmasked, valid_until=valid_until, approved_fields=fields,
        approved_filter=row_filter, approved_unmasked=unmasked, approved_valid_until=valid_until,
        status=SUBMITTED, needs_steward=needs_steward(dataset, unmasked), deadline=_provider_deadline(dataset, now),
        created_at=now, updated_at=now)
    session.add(req)
    session.flush()
    _record(session, req, p, "consumer", "submit", None)
    if kind == "share" and dataset.share_type == ShareType.unconditional:
        # 无条件共享: the platform approves at once; the steward still reviews high grades or plain text.
        _advance(session, None, req, "auto", settings, "无条件共享，平台自动通过")
    return req


def request_kind(session: Session, principal: Principal | None, dataset: Dataset) -> str:
    """Whether the caller may ask for this dataset at all, before looking at what is asked: "share" (a government
    consumer's 共享申请) or "open" (an outside user's 开放申请); otherwise the refusal create_request gives."""
    p = require_principal(principal)
    if not can_see_dataset(p, dataset):
        raise NotFound(f"资源 {dataset.code} 不存在")
    if dataset.status != DatasetStatus.published:
        raise Conflict(f"资源 {dataset.code} 已撤销，不能申请")
    refuse_local_change(session, dataset, "申请共享或开放")
    if p.is_external:
        if dataset.open_type == OpenType.unconditional:
            raise Conflict(f"资源 {dataset.code} 为无条件开放，无需申请，可直接在开放门户下载")
        if dataset.open_type != OpenType.restricted:
            raise NotFound(f"资源 {dataset.code} 不存在")
        return "open"
    if not p.has(Role.consumer):
        raise PermissionDenied("只有数据使用方 (consumer) 可以申请共享")
    if p.department_id == dataset.department_id:
        raise _violation("dataset", "share.own_data", f"dataset: {dataset.code} 是本部门的资源，无需申请共享")
    if dataset.share_type == ShareType.not_shared:
        basis = dataset.share_condition or "未提供"
        raise _violation("dataset", "share.not_shared",
                         f"dataset: 资源 {dataset.code} 为不予共享，不能申请。依据：{basis}")
    return "share"


def _provider_deadline(dataset: Dataset, now: dt.datetime) -> dt.datetime:
    return add_working_days(now, PROVIDER_DAYS if dataset.latest_version else PROVIDER_DAYS_UNPUBLISHED)


def _advance(session: Session, p: Principal | None, req: ShareRequest, stage: str, settings: Settings,
             reason: str) -> None:
    before = req.status
    if stage in ("auto", "provider") and req.needs_steward:
        req.status = PENDING_STEWARD
        req.deadline = add_working_days(utcnow(), STEWARD_DAYS)
        _record(session, req, p, stage, "approve", before, reason)
        return
    req.status = APPROVED
    req.decided_at = utcnow()
    grant = Grant(
        request_id=req.id, kind=req.kind, dataset_id=req.dataset_id, provider_department_id=req.provider_department_id,
        consumer_department_id=req.consumer_department_id, grantee_user_id=req.requested_by_id,
        fields=list(req.approved_fields), row_filter=list(req.approved_filter),
        unmasked_fields=list(req.approved_unmasked), valid_until=_end_of_day(req.approved_valid_until),
        requests_per_minute=req.approved_requests_per_minute or settings.gateway_default_requests_per_minute,
        rows_per_day=req.approved_rows_per_day or req.expected_volume or settings.gateway_default_rows_per_day)
    session.add(grant)
    session.flush()
    _record(session, req, p, stage, "approve", before, reason, grant)


# --- decisions ------------------------------------------------------------------------------------------------------

def decide(session: Session, principal: Principal | None, request_id: int, decision: Any,
           settings: Settings) -> ShareRequest:
    p = require_principal(principal)
    req = get_request(session, p, request_id)
    roles = _roles_on(p, req)
    if req.status == SUBMITTED:
        stage = "provider"
        if "provider" not in roles:
            raise PermissionDenied(f"申请 {req.id} 由 {req.provider_department.name} 的提供方审核")
    elif req.status == PENDING_STEWARD:
        stage = "steward"
        if "steward" not in roles:
            raise PermissionDenied(f"申请 {req.id} 已由提供方同意，待大数据局 (steward) 审核")
    else:
        raise Conflict(f"申请 {req.id} 当前状态为「{STATUS_NAMES[req.status]}」，不能审核",
                       status=req.status)
    before = req.status
    if decision.action in ("reject", "return"):
        if len(decision.reason.strip()) < 2:
            raise _violation("reason", "decision.reason_required", "reason: 驳回或退回必须说明理由")
        req.status = REJECTED if decision.action == "reject" else RETURNED
        if decision.action == "reject":
            req.decided_at = utcnow()
        _record(session, req, p, stage, decision.action, before, decision.reason.strip())
        return req
    _narrow(req, decision)
    if decision.requests_per_minute is not None:
        req.approved_requests_per_minute = decision.requests_per_minute
    if decision.rows_per_day is not None:
        req.approved_rows_per_day = decision.rows_per_day
    _advance(session, p, req, stage, settings, decision.reason.strip())
    return req


def _narrow(req: ShareRequest, decision: Any) -> None:
    """Apply an approver's narrowing; anything wider than the current scope is refused, naming the field."""
    dataset = req.dataset
    violations: list[RuleViolation] = []
    fields = list(req.approved_fields)
    if decision.fields is not None:
        new = _check_fields(dataset, decision.fields, "fields")
        wider = [f for f in new if f not in fields]
        if wider:
            violations.append(RuleViolation("fields", "approval.widen",
                                            f"fields: 审批只能收窄范围，不能增加字段 {', '.join(wider)}"))
        else:
            fields = new
    unmasked = [f for f in req.approved_unmasked if f in fields]
    if decision.unmasked_fields is not None:
        new_plain = _check_unmasked(dataset, fields, decision.unmasked_fields)
        wider = [f for f in new_plain if f not in req.approved_unmasked]
        if wider:
            violations.append(RuleViolation("unmasked_fields", "approval.widen",
                                            f"unmasked_fields: 审批不能增加明文字段 {', '.join(wider)}"))
        else:
            unmasked = new_plain
    row_filter = list(req.approved_filter)
    if decision.row_filter is not None:
        new_filter = _check_filter(dataset, [c.model_dump() for c in decision.row_filter])
        if not _narrower_filter(row_filter, new_filter):
            violations.append(RuleViolation("row_filter", "approval.widen",
                                            "row_filter: 审批只能在原筛选条件上增加条件或缩小取值，不能放宽"))
        else:
            row_filter = new_filter
    valid_until = req.approved_valid_until
    if decision.valid_until is not None:
        if decision.valid_until > req.approved_valid_until:
            violations.append(RuleViolation("valid_until", "approval.widen",
                                            f"valid_until: 审批不能延长有效期（申请至 {req.approved_valid_until}）"))
        else:
            valid_until = _check_validity(decision.valid_until)
    if violations:
        raise CatalogRuleError(violations)
    req.approved_fields, req.approved_unmasked = fields, unmasked
    req.approved_filter, req.approved_valid_until = row_filter, valid_until


def resubmit(session: Session, principal: Principal | None, request_id: int, change: Any,
             settings: Settings) -> ShareRequest:
    p = require_principal(principal)
    req = get_request(session, p, request_id)
    if "consumer" not in _roles_on(p, req):
        raise PermissionDenied("只有申请方可以补充后重新提交")
    if req.status != RETURNED:
        raise Conflict(f"申请 {req.id} 当前状态为「{STATUS_NAMES[req.status]}」，只有已退回的申请可以重新提交",
                       status=req.status)
    dataset = req.dataset
    for name in ("purpose", "scenario", "basis", "expected_volume"):
        if getattr(change, name) is not None:
            setattr(req, name, getattr(change, name))
    if change.fields is not None:
        req.fields = _check_fields(dataset, change.fields, "fields")
    if change.row_filter is not None:
        req.row_filter = _check_filter(dataset, [c.model_dump() for c in change.row_filter])
    if change.unmasked_fields is not None:
        if req.kind == "open" and change.unmasked_fields:
            raise _violation("unmasked_fields", "open.no_plain_text", "unmasked_fields: 开放申请不提供明文敏感字段")
        req.unmasked_fields = change.unmasked_fields
    req.unmasked_fields = _check_unmasked(dataset, req.fields, req.unmasked_fields)
    if change.valid_until is not None:
        req.valid_until = _check_validity(change.valid_until)
    # Resubmission starts the review afresh from what is now asked for.
    req.approved_fields, req.approved_filter = list(req.fields), list(req.row_filter)
    req.approved_unmasked, req.approved_valid_until = list(req.unmasked_fields), req.valid_until
    req.needs_steward = needs_steward(dataset, req.unmasked_fields)
    req.status = SUBMITTED
    req.deadline = _provider_deadline(dataset, utcnow())
    _record(session, req, p, "consumer", "resubmit", RETURNED, change.comment)
    return req


def withdraw(session: Session, principal: Principal | None, request_id: int, reason: str) -> ShareRequest:
    p = require_principal(principal)
    req = get_request(session, p, request_id)
    if "consumer" not in _roles_on(p, req):
        raise PermissionDenied("只有申请方可以撤回申请")
    if req.status not in (*PENDING, RETURNED):
        raise Conflict(f"申请 {req.id} 当前状态为「{STATUS_NAMES[req.status]}」，不能撤回", status=req.status)
    before = req.status
    req.status = WITHDRAWN
    _record(session, req, p, "consumer", "withdraw", before, reason)
    return req


# --- grants and credentials ----------------------------------------------------------------------------------------

def grant_status(grant: Grant, now: dt.datetime | None = None) -> str:
    if grant.status == "revoked":
        return "revoked"
    return "expired" if grant.valid_until <= (now or utcnow()) else "active"


def _grant_roles(p: Principal, grant: Grant) -> set[str]:
    return _party_roles(p, grant.consumer_department_id, grant.grantee_user_id, grant.provider_department_id)


def grant_roles(principal: Principal, grant: Grant) -> set[str]:
    """The caller's parts in a grant: "consumer" may take credentials, "provider"/"steward" may revoke it."""
    return _grant_roles(principal, grant)


def get_grant(session: Session, principal: Principal | None, grant_id: int) -> Grant:
    p = require_principal(principal)
    grant = session.get(Grant, grant_id)
    if grant is None or not _grant_roles(p, grant):
        raise NotFound(f"授权 {grant_id} 不存在")
    return grant


def list_grants(session: Session, principal: Principal | None, offset: int, limit: int) -> tuple[int, list[Grant]]:
    p = require_principal(principal)
    query = select(Grant)
    if not p.is_steward:
        mine = Grant.consumer_department_id == p.department_id
        if p.is_external or not p.has(Role.consumer):
            mine = mine & (Grant.grantee_user_id == p.user_id)
        if p.has(Role.publisher):
            mine = mine | (Grant.provider_department_id == p.department_id)
        query = query.where(mine)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    return total, list(session.execute(query.order_by(Grant.id.desc()).offset(offset).limit(limit)).scalars())


def masked_fields(grant: Grant) -> dict[str, str]:
    specs = column_specs(list(grant.dataset.items), list(grant.fields), list(grant.unmasked_fields))
    return {s.code: s.mask for s in specs if s.mask}


def revoke_grant(session: Session, principal: Principal | None, grant_id: int, reason: str) -> Grant:
    p = require_principal(principal)
    grant = get_grant(session, p, grant_id)
    if not _grant_roles(p, grant) & {"provider", "steward"}:
        raise PermissionDenied("只有数据提供方或大数据局可以吊销授权")
    if grant.status == "revoked":
        raise Conflict(f"授权 {grant.id} 已于 {grant.revoked_at:%Y-%m-%d %H:%M} 吊销")
    grant.status, grant.revoked_at, grant.revoked_by_id, grant.revoke_reason = "revoked", utcnow(), p.user_id, reason
    session.flush()
    audit_append(session, [{
        "kind": "grant", "action": "grant.revoke", "status": 0, "actor_user_id": p.user_id,
        "actor_department_id": p.department_id, "grant_id": grant.id, "request_id": grant.request_id,
        "dataset_id": grant.dataset_id, "provider_department_id": grant.provider_department_id,
        "consumer_department_id": grant.consumer_department_id, "detail": {"reason": reason}}])
    return grant


def issue_credential(session: Session, principal: Principal | None, grant_id: int,
                     settings: Settings) -> tuple[GrantCredential, str]:
    p = require_principal(principal)
    grant = get_grant(session, p, grant_id)
    if "consumer" not in _grant_roles(p, grant):
        raise PermissionDenied("只有获得授权的使用方可以领取调用凭证")
    state = grant_status(grant)
    if state != "active":
        raise Conflict(f"授权 {grant.id} 已{'吊销' if state == 'revoked' else '过期'}，不能再领取凭证")
    secret = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
    cred = GrantCredential(grant_id=grant.id, token_hash=hash_token(settings.secret_key, secret), prefix=secret[:12])
    session.add(cred)
    session.flush()
    audit_append(session, [{
        "kind": "credential", "action": "credential.issue", "status": 0, "actor_user_id": p.user_id,
        "actor_department_id": p.department_id, "grant_id": grant.id, "request_id": grant.request_id,
        "dataset_id": grant.dataset_id, "provider_department_id": grant.provider_department_id,
        "consumer_department_id": grant.consumer_department_id, "detail": {"credential_id": cred.id,
                                                                           "prefix": cred.prefix}}])
    return cred, secret


def grant_usage(session: Session, principal: Principal | None, grant_id: int, recent: int = 20,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """A grant's gateway use, from its audit entries: calls and rows served today (the Beijing calendar day the row
    quota counts) and in the last minute, and the latest calls. Like /api/v1/audit, for government users only."""
    p = require_principal(principal)
    grant = get_grant(session, p, grant_id)
    if p.is_external:
        raise PermissionDenied("审计日志仅向政务部门用户开放")
    now = now or utcnow()
    day_start = dt.datetime.combine(now.astimezone(CHINA).date(), dt.time(), tzinfo=CHINA).astimezone(dt.timezone.utc)
    calls = select(AuditEntry).where(AuditEntry.grant_id == grant.id, AuditEntry.kind.in_(("gateway", "open")))

    def tally(since: dt.datetime) -> tuple[int, int, int]:
        q = calls.where(AuditEntry.at >= since).subquery()
        ok = q.c.status == 200
        total, served, rows = session.execute(select(
            func.count(), func.count().filter(ok),
            func.coalesce(func.sum(q.c.detail["rows"].as_integer()).filter(ok), 0))).one()
        return total, served, int(rows)

    day_calls, day_ok, day_rows = tally(day_start)
    minute_calls, _, _ = tally(now - dt.timedelta(minutes=1))
    latest = session.execute(calls.order_by(AuditEntry.seq.desc()).limit(recent)).scalars().all()
    return {"day_calls": day_calls, "day_ok": day_ok, "day_refused": day_calls - day_ok, "day_rows": day_rows,
            "minute_calls": minute_calls, "day_start": day_start, "recent": list(latest)}


def list_credentials(session: Session, principal: Principal | None, grant_id: int) -> list[GrantCredential]:
    grant = get_grant(session, principal, grant_id)
    return list(session.execute(select(GrantCredential).where(GrantCredential.grant_id == grant.id)
                                .order_by(GrantCredential.id)).scalars())


def revoke_credential(session: Session, principal: Principal | None, grant_id: int, credential_id: int) -> GrantCredential:
    p = require_principal(principal)
    grant = get_grant(session, p, grant_id)
    cred = session.get(GrantCredential, credential_id)
    if cred is None or cred.grant_id != grant.id:
        raise NotFound(f"凭证 {credential_id} 不存在")
    if not _grant_roles(p, grant):
        raise PermissionDenied("无权吊销该凭证")
    if cred.revoked_at is None:
        cred.revoked_at = utcnow()
        audit_append(session, [{
            "kind": "credential", "action": "credential.revoke", "status": 0, "actor_user_id": p.user_id,
            "actor_department_id": p.department_id, "grant_id": grant.id, "dataset_id": grant.dataset_id,
            "provider_department_id": grant.provider_department_id,
            "consumer_department_id": grant.consumer_department_id, "detail": {"credential_id": cred.id}}])
    return cred


# --- indicators -----------------------------------------------------------------------------------------------------

def share_rate(session: Session, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """数据共享率 (需求满足率) per provider: approved ÷ (decided + pending past the deadline)."""
    now = now or utcnow()
    rows = session.execute(select(ShareRequest.provider_department_id, ShareRequest.status, ShareRequest.deadline)
                           .where(ShareRequest.kind == "share")).all()
    stats: dict[int, dict[str, int]] = {}
    for dept_id, status, deadline in rows:
        s = stats.setdefault(dept_id, {"approved": 0, "rejected": 0, "pending": 0, "pending_overdue": 0})
        if status == APPROVED:
            s["approved"] += 1
        elif status == REJECTED:
            s["rejected"] += 1
        elif status in PENDING:
            s["pending"] += 1
            if deadline < now:
                s["pending_overdue"] += 1
    departments = {d.id: d for d in session.execute(select(Department)).scalars()}
    out = []
    for dept_id, s in sorted(stats.items(), key=lambda kv: departments[kv[0]].code):
        denominator = s["approved"] + s["rejected"] + s["pending_overdue"]
        out.append({"department": departments[dept_id].code, "department_name": departments[dept_id].name, **s,
                    "rate": round(s["approved"] / denominator, 4) if denominator else None})
    return out


def open_rate(session: Session) -> dict[str, Any]:
    """数据开放率: data items in 无条件/受限开放 resources ÷ all collected data items (resources with a version)."""
    collected = (select(func.count(DataItem.id)).join(Dataset, DataItem.dataset_id == Dataset.id)
                 .where(Dataset.status == DatasetStatus.published, Dataset.latest_version.is_not(None)))
    total = session.execute(collected).scalar_one()
    opened = session.execute(collected.where(Dataset.open_type.in_([OpenType.unconditional, OpenType.restricted]))
                             ).scalar_one()
    return {"open_items": opened, "collected_items": total, "rate": round(opened / total, 4) if total else None}


PUBLIC_DEPARTMENT = ("PUBLIC", "社会公众（注册用户）")


def register_public_user(session: Session, body: Any) -> User:
    """An outside user (role public): sees the open catalog and may apply for 受限开放 data (开放申请)."""
    from catalog.security import hash_password

    if session.execute(select(User.id).where(User.username == body.username)).first():
        raise Conflict(f"用户名 {body.username} 已被使用")
    dept = session.execute(select(Department).where(Department.code == PUBLIC_DEPARTMENT[0])).scalar_one_or_none()
    if dept is None:
        dept = Department(code=PUBLIC_DEPARTMENT[0], name=PUBLIC_DEPARTMENT[1], short_name="社会公众")
        session.add(dept)
        session.flush()
    label = f"{body.display_name}（{body.organisation}）" if body.organisation else body.display_name
    user = User(username=body.username, display_name=label[:128], department_id=dept.id, roles=["public"],
                password_hash=hash_password(body.password), contact=body.contact)
    session.add(user)
    session.flush()
    return user
