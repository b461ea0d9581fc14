"""Who is asking: principals from bearer tokens, login with password, token lifecycle."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.enums import Role
from catalog.errors import NotAuthenticated, NotFound
from catalog.models import ApiToken, User, utcnow
from catalog.security import hash_token, new_token_secret, verify_password

# A stored last-use time this fresh is not rewritten: one write per token per interval, not one per request.
LAST_USED_GRANULARITY = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    display_name: str
    department_id: int
    department_code: str
    roles: frozenset[str]

    def has(self, role: Role) -> bool:
        return role.value in self.roles

    @property
    def is_steward(self) -> bool:
        return self.has(Role.steward)

    @property
    def is_external(self) -> bool:
        """An outside user: sees what the public sees, plus its own 开放申请 and grants."""
        return self.has(Role.public)

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.id, user.username, user.display_name, user.department_id, user.department.code,
                   frozenset(user.roles or []))


def authenticate_token(session: Session, secret_key: str, raw_token: str) -> Principal:
    token = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(secret_key, raw_token))
    ).scalar_one_or_none()
    now = utcnow()
    if token is None:
        raise NotAuthenticated("令牌无效")
    if token.revoked_at is not None:
        raise NotAuthenticated("令牌已吊销")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated("令牌已过期")
    if not token.user.is_active:
        raise NotAuthenticated("用户已停用")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        token.last_used_at = now
    return Principal.of(token.user)


def issue_token(
    session: Session, secret_key: str, user: User, name: str, expires_in_days: int | None
) -> tuple[ApiToken, str]:
    secret = new_token_secret()
    expires = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_token(secret_key, secret), prefix=secret[:10],
                     expires_at=expires)
    session.add(token)
    session.flush()
    return token, secret


def login(session: Session, secret_key: str, username: str, password: str, token_name: str,
          expires_in_days: int | None) -> tuple[ApiToken, str]:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    # The same message whether the user exists or not: a login form must not confirm user names.
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        raise NotAuthenticated("用户名或密码错误")
    return issue_token(session, secret_key, user, token_name, expires_in_days)


def list_tokens(session: Session, principal: Principal) -> list[ApiToken]:
    return list(session.execute(
        select(ApiToken).where(ApiToken.user_id == principal.user_id).order_by(ApiToken.id)
    ).scalars())


def revoke_token(session: Session, principal: Principal, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    # Another user's token answers 404: its existence is not revealed.
    if token is None or token.user_id != principal.user_id:
        raise NotFound(f"令牌 {token_id} 不存在")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token
