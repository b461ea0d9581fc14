"""Catalog search benchmark (not a test): 100,000 datasets / 1,000,000 data items, 200 Chinese queries with facets.

For each database (SQLite file, PostgreSQL on this machine) it builds a synthetic catalog through the real schema
(Alembic migration) and the real search backend, then times a fixed mix of 200 queries — 60% one two-character
word, 25% two words, 10% word + department filter, 5% empty — each returning the top 20 hits (hydrated from the
datasets table, as the API does), the total and six facet counts over the whole match.

Figures: p50/p95/p99 in ms for
  * engine   — our path (full-text match in the DB's own index, facets/filters/top-k in numpy), result cache off;
  * cached   — the same with the per-process result cache on, as the server runs (repeated queries hit it);
  * baseline — the straightforward SQL path in the same run: full-text match joined to datasets, one GROUP BY
               statement per facet, ORDER BY rank LIMIT 20.
The last line is one JSON object with every figure.

    python bench/search.py                      # both databases, 100k datasets
    python bench/search.py --datasets 20000 --backends sqlite
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog.db import Database  # noqa: E402
from catalog.migrate import upgrade  # noqa: E402
from catalog.models import CatalogState, DataElement, DataItem, Dataset, Department  # noqa: E402
from catalog.repository import datasets_by_id  # noqa: E402
from catalog.search import CatalogSearch, SearchQuery, backend_for, document_fields  # noqa: E402
from catalog.search.engine import FACETS  # noqa: E402
from catalog.search.segment import query_terms  # noqa: E402

DEPARTMENTS = ["公安局", "市场监督管理局", "人力资源和社会保障局", "民政局", "卫生健康委员会", "教育局", "自然资源和规划局",
               "生态环境局", "发展和改革委员会", "住房和城乡建设局", "农业农村局", "医疗保障局", "税务局", "司法局", "交通运输局",
               "文化广电旅游局", "应急管理局", "水利局", "商务局", "财政局"]
SUBJECTS = ["企业", "个体工商户", "人口", "户籍", "社会保险", "医疗机构", "学校", "学生", "教师", "不动产", "土地", "房屋",
            "建设项目", "道路", "车辆", "驾驶人", "空气质量", "水质", "污染源", "农业", "农村", "耕地", "养老", "低保",
            "残疾人", "婚姻", "殡葬", "药品", "食品", "特种设备", "旅游", "文物", "水利工程", "河道", "应急", "安全生产",
            "税收", "发票", "财政", "公积金", "就业", "失业", "职称", "律师", "公证", "信用", "失信", "守信", "许可",
            "处罚", "投诉", "举报", "证照", "执照", "资质", "地址", "门牌", "网格", "气象", "交通"]
ACTIONS = ["登记", "注册", "备案", "审批", "许可", "检查", "监测", "评价", "统计", "缴纳", "申报", "核查", "认定", "发放",
           "变更", "注销", "年报", "抽查", "处罚", "奖励", "公示", "名录", "档案", "台账"]
SUFFIXES = ["基本信息", "明细", "情况", "结果", "数据", "目录", "清单", "名单", "记录", "汇总"]
ITEM_WORDS = ["名称", "代码", "编号", "日期", "地址", "类型", "状态", "金额", "数量", "姓名", "身份号码", "电话", "机构",
              "负责人", "面积", "等级", "结论", "说明", "经度", "纬度", "有效期", "发证机关", "登记机关", "行政区划"]
CATEGORIES = ["基础库", "主题库", "专题库", "部门库"]
SHARE = ["无条件共享", "有条件共享", "不予共享"]
OPEN = ["无条件开放", "受限开放", "禁止开放"]
GRADES = ["L1", "L2", "L3", "L4"]
CYCLES = ["实时", "每日", "每周", "每月", "每季度", "每半年", "每年", "不定期"]
STATUS = ["未归集", "已归集", "归集失败", "已过期"]


def build_catalog(db: Database, n_datasets: int, items_per_dataset: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    backend = backend_for(db.dialect)
    t0 = time.perf_counter()
    upgrade(db.engine)
    with db.session() as s:
        s.execute(insert(Department), [{"id": i + 1, "code": f"D{i + 1:02d}", "name": f"示范市{n}", "short_name": n,
                                        "created_at": dt.datetime.now(dt.timezone.utc)}
                                       for i, n in enumerate(DEPARTMENTS)])
        elements = [{"id": i + 1, "identifier": f"DE{i + 1:07d}", "version": "1.0", "name": w + (str(i) if i >= len(ITEM_WORDS) else ""),
                     "data_type": "string", "sensitivity": "一般", "security_grade": "L1", "checks": []}
                    for i, w in enumerate(ITEM_WORDS * 8)]
        s.execute(insert(DataElement), elements)
    now = dt.datetime.now(dt.timezone.utc)
    chunk = 5000
    item_id = 1
    for start in range(0, n_datasets, chunk):
        datasets, items, docs = [], [], []
        for i in range(start, min(start + chunk, n_datasets)):
            subject = rng.choice(SUBJECTS)
            name = subject + rng.choice(ACTIONS) + rng.choice(SUFFIXES)
            dept = rng.randrange(len(DEPARTMENTS))
            extra = rng.sample(SUBJECTS, 2)
            summary = (f"{DEPARTMENTS[dept]}掌握的{name}，包括{extra[0]}{rng.choice(ACTIONS)}及"
                       f"{extra[1]}{rng.choice(ACTIONS)}等内容，按{rng.choice(CYCLES)}更新。")
            keywords = [subject, rng.choice(ACTIONS), extra[0]]
            grade = rng.choice(GRADES)
            datasets.append({
                "id": i + 1, "code": f"D{dept + 1:02d}-{i + 1:07d}", "name": name, "summary": summary,
                "keywords": keywords, "category": rng.choice(CATEGORIES), "department_id": dept + 1,
                "share_type": rng.choice(SHARE), "share_method": "接口", "open_type": rng.choice(OPEN),
                "update_cycle": rng.choice(CYCLES), "security_grade": grade, "national_level": "一般",
                "collection_status": rng.choice(STATUS), "status": "published", "related": [],
                "release_date": dt.date(2020, 1, 1) + dt.timedelta(days=rng.randrange(2000)),
                "created_at": now, "updated_at": now,
            })
            item_names = []
            for p in range(items_per_dataset):
                el = rng.randrange(len(elements))
                item_names += [elements[el]["name"], elements[el]["name"]]
                items.append({"id": item_id, "dataset_id": i + 1, "position": p, "code": f"f{p}",
                              "name": elements[el]["name"], "data_element_id": el + 1, "data_type": "string",
                              "required": False, "is_key": p == 0, "sensitivity": "一般", "security_grade": "L1",
                              "source": "reference"})
                item_id += 1
            docs.append({"id": i + 1, **document_fields(name, keywords, item_names, summary, DEPARTMENTS[dept])})
        with db.session() as s:
            s.execute(insert(Dataset), datasets)
            s.execute(insert(DataItem), items)
            backend.upsert_many(s, docs)
    with db.session() as s:
        s.execute(CatalogState.__table__.update().values(generation=1))
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    else:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("INSERT INTO dataset_fts(dataset_fts) VALUES ('optimize')")
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    return {"build_s": round(time.perf_counter() - t0, 1), "datasets": n_datasets, "items": item_id - 1}


def query_mix(n: int = 200, seed: int = 11) -> list[SearchQuery]:
    rng = random.Random(seed)
    words = [w for w in SUBJECTS + ACTIONS if len(w) == 2]
    mix: list[SearchQuery] = []
    for i in range(n):
        r = rng.random()
        if r < 0.60:
            q = SearchQuery(q=rng.choice(words))
        elif r < 0.85:
            q = SearchQuery(q=" ".join(rng.sample(words, 2)))
        elif r < 0.95:
            q = SearchQuery(q=rng.choice(words), filters=(("department", (f"D{rng.randrange(len(DEPARTMENTS)) + 1:02d}",)),))
        else:
            q = SearchQuery(q="")
        mix.append(q)
    return mix


def run_engine(db: Database, mix: list[SearchQuery], cache_size: int) -> list[float]:
    search = CatalogSearch(backend_for(db.dialect), cache_size=cache_size)
    times = []
    with db.sessionmaker() as s:
        search.snapshot(s)  # load the facet snapshot once, as a running server has
        for q in mix:  # warm-up pass (OS and DB caches), not timed
            search.search(s, q)
        search._cache.clear()
        for q in mix:
            t = time.perf_counter()
            result = search.search(s, q)
            datasets_by_id(s, result.ids)
            times.append((time.perf_counter() - t) * 1000)
            s.expunge_all()
    return times


def _baseline_match_sql(dialect: str, terms) -> tuple[str, dict]:
    if dialect == "sqlite":
        from catalog.search.backends import SqliteFts5Backend as B

        return ("SELECT rowid AS id, bm25(dataset_fts) AS rank FROM dataset_fts WHERE dataset_fts MATCH :expr",
                {"expr": B._expression(terms)})
    from catalog.search.backends import PostgresTsvectorBackend as B

    return ("SELECT dataset_id AS id, -ts_rank(tsv, to_tsquery('simple', :expr)) AS rank FROM dataset_search "
            "WHERE tsv @@ to_tsquery('simple', :expr)", {"expr": B._expression(terms)})


def run_baseline(db: Database, mix: list[SearchQuery]) -> list[float]:
    """The straightforward path: SQL per facet over the match, ORDER BY rank LIMIT 20."""
    columns = {f: col.key for f, (col, _v) in FACETS.items()}
    times = []

    def one(s, q: SearchQuery) -> None:
        terms = query_terms(q.q) if q.q else ()
        where, params = "d.status = 'published'", {}
        for facet, values in q.filters:
            where += f" AND d.{columns[facet]} IN (SELECT id FROM departments WHERE code = :f_{facet})" \
                if facet == "department" else f" AND d.{columns[facet]} = :f_{facet}"
            params[f"f_{facet}"] = values[0]
        if terms:
            match_sql, mp = _baseline_match_sql(db.dialect, terms)
            params.update(mp)
            source = f"({match_sql}) m JOIN datasets d ON d.id = m.id"
            order = "m.rank, d.code"
        else:
            source, order = "datasets d", "d.code"
        s.execute(text(f"SELECT d.id FROM {source} WHERE {where} ORDER BY {order} LIMIT 20"), params).all()
        s.execute(text(f"SELECT count(*) FROM {source} WHERE {where}"), params).scalar()
        for col in columns.values():
            s.execute(text(f"SELECT d.{col}, count(*) FROM {source} WHERE {where} GROUP BY d.{col}"), params).all()

    with db.sessionmaker() as s:
        for q in mix:
            one(s, q)
        for q in mix:
            t = time.perf_counter()
            one(s, q)
            times.append((time.perf_counter() - t) * 1000)
    return times


def pct(times: list[float]) -> dict:
    a = np.array(times)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "mean": round(float(a.mean()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=int, default=100_000)
    ap.add_argument("--items-per-dataset", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg-server", default=os.environ.get("ODH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432"))
    args = ap.parse_args()

    mix = query_mix(args.queries)
    figures: dict = {"datasets": args.datasets, "items": args.datasets * args.items_per_dataset,
                     "queries": len(mix), "distinct_queries": len(set(mix))}
    for backend in args.backends.split(","):
        pg_name = None
        tmp = tempfile.TemporaryDirectory(prefix="odh-bench-")
        if backend == "sqlite":
            url = f"sqlite:///{tmp.name}/bench.db"
        else:
            import psycopg

            pg_name = f"odh_bench_{int(time.time())}_{os.getpid()}"
            with psycopg.connect(args.pg_server + "/postgres", autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {pg_name} TEMPLATE template0 ENCODING 'UTF8'")
            url = make_url(args.pg_server + "/" + pg_name).render_as_string(hide_password=False)
        db = Database(url)
        try:
            print(f"[{backend}] building {args.datasets:,} datasets …", flush=True)
            built = build_catalog(db, args.datasets, args.items_per_dataset)
            print(f"[{backend}] built in {built['build_s']} s; timing {len(mix)} queries", flush=True)
            engine = pct(run_engine(db, mix, cache_size=0))
            cached = pct(run_engine(db, mix, cache_size=512))
            baseline = pct(run_baseline(db, mix))
            figures[backend] = {"build_s": built["build_s"], "engine": engine, "cached": cached, "baseline": baseline,
                                "baseline_over_engine_p95": round(baseline["p95"] / engine["p95"], 1)}
            print(f"[{backend}] engine   p50/p95/p99 = {engine['p50']}/{engine['p95']}/{engine['p99']} ms")
            print(f"[{backend}] cached   p50/p95/p99 = {cached['p50']}/{cached['p95']}/{cached['p99']} ms")
            print(f"[{backend}] baseline p50/p95/p99 = {baseline['p50']}/{baseline['p95']}/{baseline['p99']} ms"
                  f"  (baseline/engine at p95: {figures[backend]['baseline_over_engine_p95']}x)", flush=True)
        finally:
            db.dispose()
            tmp.cleanup()
            if pg_name:
                import psycopg

                with psycopg.connect(args.pg_server + "/postgres", autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
