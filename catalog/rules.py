"""Catalog rules (DOMAIN.md "Rules"): pure checks over a dataset's fields and its resolved items.

Each rule has a stable id (the `type` of its 422 detail) and a Chinese message naming the field and the rule.
"""
from __future__ import annotations

from dataclasses import dataclass

from catalog.enums import Category, ItemSource, OpenType, SecurityGrade, Sensitivity, ShareType
from catalog.errors import RuleViolation
from catalog.models import DataElement


@dataclass
class ResolvedItem:
    index: int
    code: str
    name: str
    element: DataElement
    source: ItemSource
    length: int | None
    is_key: bool


@dataclass
class DatasetDraft:
    code: str
    department_code: str
    category: Category
    base_library: str | None
    share_type: ShareType
    share_condition: str | None
    open_type: OpenType
    open_condition: str | None
    security_grade: SecurityGrade


def _blank(text: str | None) -> bool:
    return not (text and text.strip())


def _level(grade: SecurityGrade | str) -> int:
    return int(SecurityGrade(grade).value[1])


def check_dataset(draft: DatasetDraft, items: list[ResolvedItem], new: bool = True) -> list[RuleViolation]:
    v: list[RuleViolation] = []
    grade = _level(draft.security_grade)

    # The code is assigned at registration; a dataset transferred later keeps it.
    if new and not draft.code.startswith(draft.department_code + "-"):
        v.append(RuleViolation("code", "code.department_prefix",
                               f"资源代码 code「{draft.code}」须以提供方部门代码「{draft.department_code}-」开头"))

    # 共享属性
    if draft.share_type == ShareType.not_shared and _blank(draft.share_condition):
        v.append(RuleViolation("share_condition", "share.not_shared_requires_legal_basis",
                               "共享类型为「不予共享」时，share_condition 必须写明法律、法规依据"))
    if draft.share_type == ShareType.conditional and _blank(draft.share_condition):
        v.append(RuleViolation("share_condition", "share.conditional_requires_condition",
                               "共享类型为「有条件共享」时，share_condition 必须写明共享条件"))
    if draft.share_type == ShareType.unconditional and grade >= 3:
        v.append(RuleViolation("share_type", "share.grade_forbids_unconditional",
                               f"安全分级 {draft.security_grade.value} (≥ L3) 的资源不得「无条件共享」，请改为「有条件共享」"))

    # 开放属性
    if draft.open_type == OpenType.unconditional:
        if grade != 1:
            v.append(RuleViolation("open_type", "open.unconditional_requires_l1",
                                   f"「无条件开放」要求安全分级为 L1，当前为 {draft.security_grade.value}"))
        sensitive = [i.name for i in items if i.element.sensitivity == Sensitivity.sensitive_personal]
        if sensitive:
            v.append(RuleViolation("open_type", "open.unconditional_forbids_sensitive",
                                   "「无条件开放」的资源不得包含敏感个人信息数据项：" + "、".join(sensitive)))
    if grade == 4 and draft.open_type != OpenType.closed:
        v.append(RuleViolation("open_type", "open.l4_never_open",
                               "安全分级 L4 (敏感) 的资源只能「禁止开放」"))
    if draft.open_type == OpenType.restricted and _blank(draft.open_condition):
        v.append(RuleViolation("open_condition", "open.restricted_requires_condition",
                               "开放类型为「受限开放」时，open_condition 必须写明开放条件"))
    if draft.share_type == ShareType.not_shared and draft.open_type != OpenType.closed:
        v.append(RuleViolation("open_type", "open.not_shared_cannot_open",
                               "「不予共享」的资源不得向社会开放，开放类型须为「禁止开放」"))

    # 分类
    if draft.category == Category.base and not draft.base_library:
        v.append(RuleViolation("base_library", "category.base_requires_library",
                               "分类为「基础库」时须指明 base_library (人口库、法人库、自然资源和空间地理库、地名地址库、公共信用库、电子证照库)"))
    if draft.category != Category.base and draft.base_library:
        v.append(RuleViolation("base_library", "category.library_only_for_base",
                               f"base_library 只适用于「基础库」，当前分类为「{draft.category.value}」"))

    # 数据项
    if items and not any(i.is_key for i in items):
        v.append(RuleViolation("items", "items.key_required", "至少一个数据项须标记为主键 (is_key)"))
    seen_codes: dict[str, int] = {}
    claimed: dict[str, str] = {}
    for item in items:
        if item.code in seen_codes:
            v.append(RuleViolation(f"items.{item.index}.code", "items.duplicate_code",
                                   f"数据项代码「{item.code}」在本资源中重复"))
        seen_codes[item.code] = item.index
        el = item.element
        if item.source == ItemSource.authoritative:
            if el.identifier in claimed:
                v.append(RuleViolation(f"items.{item.index}.source", "items.duplicate_authoritative",
                                       f"数据元「{el.name}」({el.identifier}) 在本资源中已由数据项「{claimed[el.identifier]}」"
                                       "作为权威来源登记，同一资源只能登记一次；其余数据项请登记为引用 (reference)"))
            claimed.setdefault(el.identifier, item.code)
        if item.length is not None and el.max_length is not None and item.length > el.max_length:
            v.append(RuleViolation(f"items.{item.index}.length", "items.length_exceeds_standard",
                                   f"数据项「{item.name}」长度 {item.length} 超出数据元「{el.name}」标准的最大长度 {el.max_length}"))
        if _level(el.security_grade) > grade:
            # 就高从严: a resource's grade is at least the highest grade of its items.
            v.append(RuleViolation("security_grade", "grade.not_below_items",
                                   f"安全分级 {draft.security_grade.value} 低于数据项「{item.name}」的分级 "
                                   f"{el.security_grade.value}（就高从严：资源分级取数据项最高分级）"))
    return v
