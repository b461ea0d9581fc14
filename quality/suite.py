"""Quality rules generated from the standards of a dataset's items — no per-dataset configuration.

Each rule has a stable id (`<kind>:<columns>`) so a later run of the same rule on a newer version updates the same
problem-data ticket, a quality dimension (GB/T 36344-2018), and the data element it judges — the element's
authoritative source department is who a failure is routed to (一数一源, 首问责任制).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalog.enums import DataType, ItemSource
from catalog.models import Dataset, DataItem

COMPLETENESS, CONFORMITY, ACCURACY, UNIQUENESS, CONSISTENCY, TIMELINESS = (
    "完整性", "规范性", "准确性", "唯一性", "一致性", "时效性")
DIMENSIONS = (CONFORMITY, COMPLETENESS, ACCURACY, UNIQUENESS, CONSISTENCY, TIMELINESS)

BIRTH_DATE_NAMES = {"出生日期"}
GENDER_CHECK = "cn_gender_code"
ID_CHECK = "cn_resident_id"


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str  # not_null | regex | length | in_set | unique | compound_unique | between | identifier | id_birth_date | id_gender
    dimension: str
    columns: tuple[str, ...]
    description: str
    element: str | None = None  # the data element judged (routes the ticket to its authoritative source)
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def key_columns(dataset: Dataset) -> list[str]:
    keys = [i.code for i in dataset.items if i.is_key]
    return keys or [dataset.items[0].code]


def generate_rules(dataset: Dataset) -> list[Rule]:
    rules: list[Rule] = []
    items: list[DataItem] = list(dataset.items)
    for item in items:
        el = item.data_element
        label = f"「{item.name}」({item.code})"
        if item.required:
            rules.append(Rule(f"not_null:{item.code}", "not_null", COMPLETENESS, (item.code,),
                              f"{label}为必填项，不能为空", el.identifier))
        if item.data_type == DataType.string:
            if el.pattern:
                rules.append(Rule(f"regex:{item.code}", "regex", CONFORMITY, (item.code,),
                                  f"{label}须符合数据元「{el.name}」的格式 {el.pattern}", el.identifier,
                                  {"pattern": el.pattern}))
            # A code list already fixes the possible values, and with them their lengths.
            if (el.min_length is not None or el.max_length is not None) and not el.code_list:
                rules.append(Rule(f"length:{item.code}", "length", CONFORMITY, (item.code,),
                                  f"{label}长度须在 {el.min_length or 0}–{el.max_length or '∞'} 之间", el.identifier,
                                  {"min": el.min_length, "max": el.max_length}))
            if el.code_list:
                rules.append(Rule(f"in_set:{item.code}", "in_set", CONFORMITY, (item.code,),
                                  f"{label}须为数据元「{el.name}」值域中的代码", el.identifier,
                                  {"values": sorted(el.code_list)}))
        if el.value_range and item.data_type in (DataType.integer, DataType.decimal, DataType.date):
            low, high = el.value_range.get("min"), el.value_range.get("max")
            if low is not None or high is not None:
                rules.append(Rule(f"between:{item.code}", "between", ACCURACY, (item.code,),
                                  f"{label}须在 {low if low is not None else '-∞'}–{high if high is not None else '∞'} 之间",
                                  el.identifier, {"min": low, "max": high}))
        for check in el.checks or []:
            if item.data_type == DataType.string:
                from quality.identifiers import CHECK_DESCRIPTIONS

                rules.append(Rule(f"{check}:{item.code}", "identifier", ACCURACY, (item.code,),
                                  f"{label}：{CHECK_DESCRIPTIONS.get(check, check)}", el.identifier,
                                  {"check": check}))
    keys = [i for i in items if i.is_key]
    if len(keys) == 1:
        k = keys[0]
        rules.append(Rule(f"unique:{k.code}", "unique", UNIQUENESS, (k.code,), f"主键「{k.name}」({k.code})不能重复",
                          k.data_element.identifier))
    elif len(keys) > 1:
        cols = tuple(k.code for k in keys)
        rules.append(Rule(f"compound_unique:{'+'.join(cols)}", "compound_unique", UNIQUENESS, cols,
                          "主键组合（" + "、".join(k.name for k in keys) + "）不能重复", keys[0].data_element.identifier))
    rules += consistency_rules(dataset)
    ids = [i for i in items if ID_CHECK in (i.data_element.checks or []) and i.data_type == DataType.string]
    if ids:
        id_item = ids[0]
        for item in items:
            if item.data_element.name in BIRTH_DATE_NAMES and item.data_type in (DataType.date, DataType.string):
                rules.append(Rule(f"id_birth_date:{id_item.code}+{item.code}", "id_birth_date", ACCURACY,
                                  (id_item.code, item.code),
                                  f"「{item.name}」须与「{id_item.name}」中的出生日期一致", item.data_element.identifier))
            if GENDER_CHECK in (item.data_element.checks or []):
                rules.append(Rule(f"id_gender:{id_item.code}+{item.code}", "id_gender", ACCURACY,
                                  (id_item.code, item.code),
                                  f"「{item.name}」须与「{id_item.name}」第 17 位所示性别一致", item.data_element.identifier))
    return rules


def consistency_rules(dataset: Dataset) -> list[Rule]:
    """一致性: a copied (reference) item must equal its authoritative source on the shared key.

    The shared key is an item of this dataset that references a key item of the source dataset (e.g. 公民身份号码);
    every other item referencing the same source dataset is compared with the source's latest version on it.
    A mismatch is the copy's to fix, so the rule judges no element of its own: its ticket goes to this dataset's
    department, with the source named in the description.
    """
    groups: dict[int, list[DataItem]] = {}
    for item in dataset.items:
        ref = item.reference_item
        if item.source == ItemSource.reference and ref is not None and ref.dataset_id != dataset.id:
            groups.setdefault(ref.dataset_id, []).append(item)
    rules = []
    for items in groups.values():
        keys = [i for i in items if i.reference_item.is_key]
        if not keys:
            continue
        key = keys[0]
        source = key.reference_item.dataset
        for item in items:
            if item is key or item.reference_item.is_key:
                continue
            rules.append(Rule(
                f"consistency:{item.code}", "consistency", CONSISTENCY, (key.code, item.code),
                f"「{item.name}」({item.code}) 须与权威来源 {source.department.name}「{source.name}」({source.code}) "
                f"按「{key.name}」对应的值一致", None,
                {"source_dataset_id": source.id, "source_dataset": source.code, "source_key": key.reference_item.code,
                 "source_column": item.reference_item.code}))
    return rules
