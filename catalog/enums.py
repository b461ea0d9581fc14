"""Controlled vocabularies of the catalog (values are the Chinese terms users see; see DOMAIN.md)."""
from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    publisher = "publisher"  # registers and maintains its department's datasets
    consumer = "consumer"  # requests access to other departments' data
    steward = "steward"  # 大数据局: keeps the catalog, may act on every department's datasets
    admin = "admin"  # manages departments and users
    public = "public"  # a registered outside user (社会公众): open data and 开放申请 only, never the government catalog


class Category(str, Enum):
    base = "基础库"
    topic = "主题库"
    special = "专题库"
    department = "部门库"


class BaseLibrary(str, Enum):
    population = "人口库"
    legal_entity = "法人库"
    spatial = "自然资源和空间地理库"
    address = "地名地址库"
    credit = "公共信用库"
    license = "电子证照库"


class ShareType(str, Enum):
    unconditional = "无条件共享"
    conditional = "有条件共享"
    not_shared = "不予共享"


class ShareMethod(str, Enum):
    api = "接口"
    file = "文件"
    table = "库表"


class OpenType(str, Enum):
    unconditional = "无条件开放"
    restricted = "受限开放"
    closed = "禁止开放"


class UpdateCycle(str, Enum):
    realtime = "实时"
    daily = "每日"
    weekly = "每周"
    monthly = "每月"
    quarterly = "每季度"
    half_yearly = "每半年"
    yearly = "每年"
    irregular = "不定期"


class SecurityGrade(str, Enum):
    L1 = "L1"  # 不敏感
    L2 = "L2"  # 低敏感
    L3 = "L3"  # 较敏感
    L4 = "L4"  # 敏感

    @property
    def level(self) -> int:
        return int(self.value[1])


class NationalLevel(str, Enum):
    general = "一般"
    important = "重要"
    core = "核心"


class CollectionStatus(str, Enum):
    not_collected = "未归集"
    collected = "已归集"
    failed = "归集失败"
    expired = "已过期"


class DatasetStatus(str, Enum):
    published = "published"  # catalogued and visible
    withdrawn = "withdrawn"  # removed from the catalog (kept for history)


class Sensitivity(str, Enum):
    general = "一般"
    sensitive_personal = "敏感个人信息"


class DataType(str, Enum):
    string = "string"
    integer = "integer"
    decimal = "decimal"
    date = "date"
    datetime = "datetime"
    boolean = "boolean"


class ItemSource(str, Enum):
    authoritative = "authoritative"  # this dataset is the item's one source (一数一源)
    reference = "reference"  # a copy that points at the authoritative item
