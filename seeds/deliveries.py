"""Demo deliveries (归集) with deliberate quality problems, generated deterministically at seed time.

Three deliveries show the whole quality story: 公安局's 人口基本信息 (the authoritative source of ID numbers and
names), 市场监管局's 企业登记基本信息 (source of 统一社会信用代码), and 人力社保局's 社会保险参保信息, which *references*
both — so its bad ID numbers are routed to 公安局 and its bad credit codes to 市场监管局 (一数一源), while 人力社保局 is
the 首问 department. `corrected(...)` gives the same data with the problems fixed, for the demo's "deliver corrected
data and watch the score rise" step.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import random

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
DIVISION = "110105"  # in use for every birth year generated here (the ID check knows each code's years)


def resident_id(birth: dt.date, seq: int, division: str = DIVISION) -> str:
    body = f"{division}{birth:%Y%m%d}{seq:03d}"
    check = (12 - sum(int(c) * w for c, w in zip(body, ID_WEIGHTS)) % 11) % 11
    return body + ("X" if check == 10 else str(check))


def org_code(body8: str) -> str:
    value = 11 - sum(int(c, 36) * w for c, w in zip(body8, ORG_WEIGHTS)) % 11
    return body8 + ("X" if value == 10 else "0" if value == 11 else str(value))


def uscc(body8: str) -> str:
    code17 = "91" + DIVISION + org_code(body8)
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(code17, USCC_WEIGHTS))
    return code17 + USCC_ALPHABET[(31 - total % 31) % 31]


def _broken_check(code: str) -> str:
    last = code[-1]
    return code[:-1] + ("1" if last != "1" else "2")


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def _people(n: int, rng: random.Random) -> list[dict]:
    people = []
    for i in range(n):
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))
        seq = rng.randrange(1, 999)
        people.append({"sfzhm": resident_id(birth, seq), "xm": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                       "xbdm": "1" if seq % 2 else "2", "csrq": birth.isoformat(), "i": i})
    return people


def _enterprises(n: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        body = f"{rng.randrange(10**7, 10**8)}"
        code = uscc(body)
        out.append({"tyshxydm": code, "zzjgdm": code[8:17], "qymc": f"示范市{rng.choice(['宏达', '瑞丰', '恒信', '华兴', '鑫源'])}"
                    f"{rng.choice(['科技', '贸易', '建设', '物流', '食品'])}有限公司{i:03d}"})
    return out


def population(corrected: bool = False) -> list[dict]:
    rng = random.Random(2026)
    rows = []
    for p in _people(240, rng):
        rows.append({"sfzhm": p["sfzhm"], "xm": p["xm"], "xbdm": p["xbdm"], "csrq": p["csrq"], "mzdm": "01",
                     "hjdz": f"示范市东城区和平路{p['i'] + 1}号", "hjdxzqhdm": DIVISION, "hh": f"{110105000 + p['i']}",
                     "yhzgxdm": "02", "whcddm": rng.choice(["20", "30", "40"])})
    if not corrected:
        for i in (5, 77, 150):
            rows[i]["sfzhm"] = _broken_check(rows[i]["sfzhm"])  # 校验码错误
        rows[201]["sfzhm"] = rows[200]["sfzhm"]  # 重复登记
        rows[201].update(xbdm=rows[200]["xbdm"], csrq=rows[200]["csrq"])
        rows[33]["xm"] = ""  # 姓名缺失
        rows[34]["xm"] = ""
        rows[60]["xbdm"] = "5"  # 非法性别代码
        rows[90]["csrq"] = "1999-09-09"  # 出生日期与身份证号不符
        rows[120]["hjdxzqhdm"] = "119999"  # 不存在的行政区划
    return rows


def enterprises(corrected: bool = False) -> list[dict]:
    rng = random.Random(32100)
    rows = []
    for e in _enterprises(120, rng):
        rows.append({**e, "qylxdm": rng.choice(["1100", "1110", "1130"]), "fddbrxm": rng.choice(SURNAMES) + "总",
                     "zczb": f"{rng.randrange(10, 5000)}", "clrq": (dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(8000))).isoformat(),
                     "djjg": "示范市市场监督管理局", "jyfw": "技术开发、技术服务", "jyztdm": "1",
                     "zs": f"示范市东城区创业大道{rng.randrange(1, 300)}号", "zsxzqhdm": DIVISION})
    if not corrected:
        rows[7]["tyshxydm"] = _broken_check(rows[7]["tyshxydm"])
        rows[64]["tyshxydm"] = rows[64]["tyshxydm"][:17] + "I"  # I 不在代码字符集中
        rows[99]["jyztdm"] = "8"
    return rows


def insurance(corrected: bool = False) -> list[dict]:
    people, companies = population(corrected=True), enterprises(corrected=True)
    rng = random.Random(7)
    rows = []
    for p in people[:180]:
        company = rng.choice(companies)
        rows.append({"sfzhm": p["sfzhm"], "xm": p["xm"], "cbxzdm": "110", "cbztdm": "1",
                     "cbrq": "2023-01-01", "dwtyshxydm": company["tyshxydm"], "dwmc": company["qymc"]})
    if not corrected:
        rows[12]["sfzhm"] = _broken_check(rows[12]["sfzhm"])  # → 公安局 (source of 公民身份号码)
        rows[13]["sfzhm"] = _broken_check(rows[13]["sfzhm"])
        rows[40]["dwtyshxydm"] = _broken_check(rows[40]["dwtyshxydm"])  # → 市场监管局 (source of 统一社会信用代码)
        rows[41]["cbztdm"] = "7"
        rows[50]["xm"] = rows[50]["xm"][0] + "某某"  # 与公安局人口库登记的姓名不一致 (一致性)
    return rows


def stations(corrected: bool = False) -> list[dict]:
    """生态环境局's 空气质量监测站点信息: 无条件开放, so the open-data portal has something to download."""
    rng = random.Random(11)
    districts = [("110101", "东城区"), ("110102", "西城区"), ("110105", "朝阳区"), ("110106", "丰台区")]
    rows = []
    for i in range(40):
        code, name = districts[i % len(districts)]
        rows.append({"jczdbm": f"{1001 + i}", "jczdmc": f"{name}第{i // 4 + 1}监测站", "zdlxdm": rng.choice("123"),
                     "dz": f"示范市{name}环保路{i + 1}号", "xzqhdm": code, "jd": f"{116.3 + rng.random() / 5:.6f}",
                     "wd": f"{39.85 + rng.random() / 5:.6f}"})
    return rows


# The web story (README "Click through the story"): 自然资源局 registers 地质灾害群测群防监测员名单 with these items —
# every element already has its one source, so the ID number and the name are references to 公安局 and the hazard
# items references to its own 地质灾害隐患点信息 — then delivers monitors() with errors and monitors(corrected=True).
MONITOR_ITEMS = [  # code, name, 数据元
    ("sfzhm", "监测员公民身份号码", "DE0101001"),
    ("xm", "监测员姓名", "DE0101002"),
    ("yhdbh", "隐患点编号", "DE0305001"),
    ("zhlxdm", "灾害类型代码", "DE0305003"),
    ("wxrs", "威胁人数", "DE0305005"),
]


def monitors(corrected: bool = False) -> list[dict]:
    """30 monitors who are people 公安局 registered correctly (so 一致性 holds); three 灾害类型代码 outside the code
    list unless corrected — a problem whose source is 自然资源局 itself."""
    same = [c for c, raw in zip(population(corrected=True), population()) if c == raw][:30]
    return [{"sfzhm": p["sfzhm"], "xm": p["xm"], "yhdbh": f"DZ{n:04d}",
             "zhlxdm": "9" if n < 3 and not corrected else "2", "wxrs": str(n * 3)} for n, p in enumerate(same)]


DELIVERIES = {"GAJ-00001": ("人口基本信息.csv", population), "SCJG-00001": ("企业登记基本信息.csv", enterprises),
              "RSJ-00001": ("社会保险参保信息.csv", insurance), "STHJ-00001": ("空气质量监测站点信息.csv", stations)}


def csv_bytes(rows: list[dict], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)
