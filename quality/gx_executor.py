"""The Great Expectations executor: the generated rules as a GX 1.x expectation suite, validated on pandas.

GX is the expectation framework of record: its suite and validation result are what stewards open as Data Docs.
It is slow on large data (shared/notes/quality.md), so runs use the fast executor; this one exists to produce GX
artefacts and to prove — tests/test_quality.py (test_fast_executor_results_equal_great_expectations) — that the fast executor's results equal GX's.
Imported lazily: `import great_expectations` alone costs ~2 s and ~300 MB.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality.executor import RuleOutcome
from quality.suite import Rule

# Rule kinds GX validates here; cross-field identifier rules run only in the fast executor.
GX_KINDS = {"not_null", "regex", "length", "in_set", "between", "identifier", "unique", "compound_unique"}


@lru_cache
def _gx():  # noqa: ANN202
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.metrics import ColumnMapMetricProvider, column_condition_partial

    from quality import identifiers

    class ColumnValuesPassIdentifierCheck(ColumnMapMetricProvider):
        condition_metric_name = "column_values.odh_identifier_check"
        condition_value_keys = ("check",)

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column, check, **kwargs):  # noqa: ANN001, ANN202, N805
            values = pa.array([None if v is None else str(v) for v in column.tolist()], type=pa.string())
            ok = identifiers.CHECKS[check](values)
            return pd.Series(pc.fill_null(ok, False).to_numpy(zero_copy_only=False), index=column.index)

    class ExpectColumnValuesToPassIdentifierCheck(ColumnMapExpectation):
        """Values pass a Chinese identifier check (公民身份号码, 统一社会信用代码, 行政区划代码 …)."""

        check: str
        map_metric = "column_values.odh_identifier_check"
        success_keys = ("check", "mostly")

    return gx, gxe, pd, ExpectColumnValuesToPassIdentifierCheck


def build_suite(rules: list[Rule], name: str) -> tuple[Any, list[Rule]]:
    gx, gxe, _pd, IdentifierCheck = _gx()
    suite = gx.ExpectationSuite(name=name)
    used: list[Rule] = []
    for rule in rules:
        col = rule.columns[0]
        meta = {"rule_id": rule.id, "dimension": rule.dimension, "description": rule.description}
        if rule.kind == "not_null":
            exp = gxe.ExpectColumnValuesToNotBeNull(column=col, meta=meta)
        elif rule.kind == "regex":
            exp = gxe.ExpectColumnValuesToMatchRegex(column=col, regex=rule.params["pattern"], meta=meta)
        elif rule.kind == "length":
            exp = gxe.ExpectColumnValueLengthsToBeBetween(column=col, min_value=rule.params.get("min"),
                                                          max_value=rule.params.get("max"), meta=meta)
        elif rule.kind == "in_set":
            exp = gxe.ExpectColumnValuesToBeInSet(column=col, value_set=rule.params["values"], meta=meta)
        elif rule.kind == "between":
            exp = gxe.ExpectColumnValuesToBeBetween(column=col, min_value=_bound(rule.params.get("min")),
                                                    max_value=_bound(rule.params.get("max")), meta=meta)
        elif rule.kind == "identifier":
            exp = IdentifierCheck(column=col, check=rule.params["check"], meta=meta)
        elif rule.kind == "unique":
            exp = gxe.ExpectColumnValuesToBeUnique(column=col, meta=meta)
        elif rule.kind == "compound_unique":
            exp = gxe.ExpectCompoundColumnsToBeUnique(column_list=list(rule.columns), meta=meta)
        else:
            continue
        suite.add_expectation(exp)
        used.append(rule)
    return suite, used


def _bound(value: Any) -> Any:
    # Date ranges are written as ISO strings in the standards; the column holds datetime.date values.
    if isinstance(value, str):
        import datetime as dt

        return dt.date.fromisoformat(value)
    return value


def run_gx(rules: list[Rule], table: pa.Table, suite_name: str = "generated",
           docs_root: str | None = None) -> tuple[list[RuleOutcome], dict]:
    """Validate with GX (result_format COMPLETE, row position as the index); returns outcomes and the GX result.

    With docs_root, a file-backed GX project there keeps the suite and validation result and rebuilds its Data
    Docs site (docs_root/gx/uncommitted/data_docs/local_site/index.html) for stewards to open.
    """
    import uuid

    gx, _gxe, _pd, _ = _gx()
    # The suite needs a current context before it takes expectations.
    if docs_root:
        context = gx.get_context(mode="file", project_root_dir=docs_root)
    else:
        context = gx.get_context(mode="ephemeral")
    suite, used = build_suite(rules, suite_name)
    frame = table.to_pandas(types_mapper=None)
    if docs_root:
        try:
            source = context.data_sources.get("snapshots")
        except (KeyError, ValueError, gx.exceptions.DataContextError):
            source = context.data_sources.add_pandas("snapshots")
        run_name = f"{suite_name}-{uuid.uuid4().hex[:8]}"
        asset = source.add_dataframe_asset(run_name)
        definition = asset.add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add_or_update(suite)
        validation = context.validation_definitions.add(gx.ValidationDefinition(name=run_name, data=definition,
                                                                                suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=run_name, validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "COMPLETE"}))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        result = next(iter(outcome.run_results.values()))
    else:
        source = context.data_sources.add_pandas("snapshot")
        batch = (source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("whole")
                 .get_batch(batch_parameters={"dataframe": frame}))
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    by_id = {r.id: r for r in used}
    outcomes = []
    for res in result.results:
        rule = by_id[res.expectation_config.meta["rule_id"]]
        info = res.result
        element = info.get("element_count", table.num_rows)
        missing = info.get("missing_count") or 0
        evaluated = element if rule.kind in ("not_null", "compound_unique") else element - missing
        failing = np.sort(np.asarray(info.get("unexpected_index_list") or [], dtype=np.int64))
        outcomes.append(RuleOutcome(rule, int(evaluated), failing))
    return outcomes, result.to_json_dict()


def data_docs_index(docs_root: str) -> str:
    return f"{docs_root}/gx/uncommitted/data_docs/local_site/index.html"
