"""The `opendata` command line: init, seed, serve, demo — with clear errors and exit codes."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from catalog.cli import app

runner = CliRunner()


def test_init_then_seed_then_seed_again(tmp_path):
    r = runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "0006" in r.output
    r = runner.invoke(app, ["seed", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert re.search(r"资源 新增 [1-9]\d+", r.output)
    assert "演示归集 4" in r.output
    r = runner.invoke(app, ["seed", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "新增 0" in r.output


def test_seed_before_init_says_what_to_do(tmp_path):
    r = runner.invoke(app, ["seed", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2
    assert "opendata init" in r.output


def test_an_unreachable_database_is_a_clear_error(tmp_path):
    r = runner.invoke(app, ["init", "--database-url", "postgresql://postgres@127.0.0.1:1/none"])
    assert r.exit_code == 2
    assert "无法连接数据库" in r.output


def test_serve_refuses_a_taken_port(tmp_path):
    runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--port", str(port)])
    assert r.exit_code == 4
    assert "已被占用" in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_demos_run_side_by_side_and_serve_the_seeded_catalog(tmp_path):
    """The README's demo command as a user runs it: URL and tokens printed, search 信用 answers with facets."""
    procs = []
    try:
        outputs = []
        for n in range(2):
            port = _free_port()
            log = tmp_path / f"demo{n}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "catalog.cli", "demo", "--port", str(port), "--data-dir", str(tmp_path / f"d{n}")],
                stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True)
            procs.append(proc)
            outputs.append((port, log))
        for port, log in outputs:
            deadline = time.time() + 90
            token = None
            while time.time() < deadline:
                text = log.read_text(encoding="utf-8")
                m = re.search(r"^\s+steward\s+\S+\s+\S+\s+\S+\s+(odh_\S+)", text, re.M)
                if m and f"http://127.0.0.1:{port}/" in text:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                        token = m.group(1)
                        break
                    except OSError:
                        pass
                time.sleep(0.3)
            assert token, Path(log).read_text(encoding="utf-8")
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/datasets?q=%E4%BF%A1%E7%94%A8",
                                         headers={"Authorization": f"Bearer {token}"})
            body = json.loads(urllib.request.urlopen(req, timeout=10).read())
            names = [h["name"] for h in body["items"]]
            assert body["total"] >= 3 and sum("信用" in n for n in names) >= 3, names
            assert "信用" in names[0]
            assert body["facets"]["department"] and body["facets"]["share_type"]
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)


def test_collect_publishes_a_version_then_reports_unchanged_content(tmp_path):
    runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    runner.invoke(app, ["seed", "--data-dir", str(tmp_path)])
    data = tmp_path / "企业.csv"
    data.write_text("tyshxydm,zzjgdm,qymc,qylxdm,fddbrxm,zczb,clrq,djjg,jyfw,jyztdm,zs,zsxzqhdm\n"
                    "91110000600037341L,60003734-1,示范科技有限公司,1100,张三,500,2019-05-01,示范市市场监督管理局,"
                    "软件开发,1,示范市东城区一路1号,110101\n", encoding="gbk")
    args = ["collect", "SCJG-00001", str(data), "--user", "scjg_publisher", "--data-dir", str(tmp_path)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert re.search(r"已发布新版本：SCJG-00001 v2，1 行", r.output), r.output  # v1 is the seeded demo delivery
    assert "质量检查" in r.output
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "未产生新版本" in r.output


def test_collect_refuses_another_departments_dataset_and_bad_files(tmp_path):
    runner.invoke(app, ["init", "--data-dir", str(tmp_path)])
    runner.invoke(app, ["seed", "--data-dir", str(tmp_path)])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    r = runner.invoke(app, ["collect", "SCJG-00001", str(bad), "--user", "gaj_publisher", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "只有该部门的提供方" in r.output
    r = runner.invoke(app, ["collect", "SCJG-00001", str(bad), "--user", "scjg_publisher", "--data-dir", str(tmp_path)])
    assert r.exit_code == 5 and "缺少列" in r.output and "多余的列" in r.output
    r = runner.invoke(app, ["collect", "SCJG-00001", str(tmp_path / "none.csv"), "--data-dir", str(tmp_path)])
    assert r.exit_code == 2
