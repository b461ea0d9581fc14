"""Who may do what. One check per service entry point, named after it (CKAN's auth twins); deny by default."""
from __future__ import annotations

from catalog.auth import Principal
from catalog.enums import DatasetStatus, OpenType, Role
from catalog.errors import NotAuthenticated, NotFound, PermissionDenied
from catalog.models import Dataset, Department


def require_principal(principal: Principal | None) -> Principal:
    if principal is None:
        raise NotAuthenticated("需要登录：请在 Authorization 头中提供 Bearer 令牌")
    return principal


def can_see_dataset(principal: Principal | None, dataset: Dataset) -> bool:
    if dataset.status == DatasetStatus.withdrawn:
        return principal is not None and (principal.is_steward or principal.department_id == dataset.department_id)
    if principal is None or principal.is_external:
        # The public sees the open catalog only (无条件开放 / 受限开放).
        return dataset.open_type in (OpenType.unconditional, OpenType.restricted)
    return True


def check_read_dataset(principal: Principal | None, dataset: Dataset) -> None:
    if not can_see_dataset(principal, dataset):
        raise NotFound(f"资源 {dataset.code} 不存在")


def check_create_dataset(principal: Principal | None, department: Department) -> Principal:
    p = require_principal(principal)
    if p.is_steward:
        return p
    if not p.has(Role.publisher):
        raise PermissionDenied("只有数据提供方 (publisher) 或大数据局 (steward) 可以登记资源")
    if p.department_id != department.id:
        raise PermissionDenied(f"只能为本部门登记资源，不能代 {department.name} 登记")
    return p


def check_update_dataset(principal: Principal | None, dataset: Dataset) -> Principal:
    p = require_principal(principal)
    check_read_dataset(p, dataset)
    if p.is_steward:
        return p
    if not p.has(Role.publisher) or p.department_id != dataset.department_id:
        raise PermissionDenied(f"资源 {dataset.code} 属于 {dataset.department.name}，只有该部门的提供方或大数据局可以修改")
    return p


def check_transfer_dataset(principal: Principal) -> None:
    if not principal.is_steward:
        raise PermissionDenied("变更资源的提供方部门需要大数据局 (steward) 权限")


check_withdraw_dataset = check_update_dataset


def check_manage_departments(principal: Principal | None) -> Principal:
    p = require_principal(principal)
    if not p.has(Role.admin):
        raise PermissionDenied("管理部门需要管理员 (admin) 权限")
    return p


def require_government(principal: Principal | None) -> Principal:
    p = require_principal(principal)
    if p.is_external:
        raise PermissionDenied("该功能仅向政务部门用户开放")
    return p


def check_read_catalog(principal: Principal | None) -> Principal:
    """Departments, standards and indicators are for government users."""
    return require_government(principal)
