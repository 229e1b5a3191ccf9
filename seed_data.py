"""The code tables of SPEC §10 with their real values, and the idempotent seeding."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import insert, select

from extensions import db
from models import CodeItem, CodeTable, Division, Province

#: GB/T 2260 cities and counties (data/README.md says where they come from)
DIVISIONS_FILE = Path(__file__).resolve().parent / "data" / "divisions.json"

#: GB/T 2260 province-level divisions (the 31 of mainland China) and filing-number abbreviations.
PROVINCES: list[tuple[str, str, str]] = [
    ("110000", "北京市", "京"), ("120000", "天津市", "津"), ("130000", "河北省", "冀"),
    ("140000", "山西省", "晋"), ("150000", "内蒙古自治区", "蒙"), ("210000", "辽宁省", "辽"),
    ("220000", "吉林省", "吉"), ("230000", "黑龙江省", "黑"), ("310000", "上海市", "沪"),
    ("320000", "江苏省", "苏"), ("330000", "浙江省", "浙"), ("340000", "安徽省", "皖"),
    ("350000", "福建省", "闽"), ("360000", "江西省", "赣"), ("370000", "山东省", "鲁"),
    ("410000", "河南省", "豫"), ("420000", "湖北省", "鄂"), ("430000", "湖南省", "湘"),
    ("440000", "广东省", "粤"), ("450000", "广西壮族自治区", "桂"), ("460000", "海南省", "琼"),
    ("500000", "重庆市", "渝"), ("510000", "四川省", "川"), ("520000", "贵州省", "贵"),
    ("530000", "云南省", "云"), ("540000", "西藏自治区", "藏"), ("610000", "陕西省", "陕"),
    ("620000", "甘肃省", "甘"), ("630000", "青海省", "青"), ("640000", "宁夏回族自治区", "宁"),
    ("650000", "新疆维吾尔自治区", "新"),
]

# (code, name, extra). For certificate types, `extra` lists the unit-nature codes that may use it.
CODE_TABLES: dict[CodeTable, list[tuple[str, str, str | None]]] = {
    CodeTable.UNIT_NATURE: [
        ("1", "军队", None), ("2", "政府机关", None), ("3", "事业单位", None), ("4", "企业", None),
        ("5", "个人", None), ("6", "社会团体", None), ("7", "民办非企业单位", None),
        ("8", "基金会", None), ("9", "律师执业机构", None), ("10", "外国在华文化中心", None),
        ("11", "群众性团体组织", None), ("12", "司法鉴定机构", None), ("13", "宗教团体", None),
        ("14", "境外机构", None), ("15", "医疗机构", None), ("16", "公证机构", None),
        ("17", "集体经济", None),
    ],
    CodeTable.CERTIFICATE_TYPE: [
        ("1", "统一社会信用代码证书", "2,3,4,6,7,8,9,11,12,13,15,16,17"),
        ("2", "营业执照（个人或企业）", "4,17"),
        ("3", "组织机构代码证", "2,3,4,6,7,8"),
        ("4", "事业单位法人证书", "3"),
        ("5", "社会团体法人登记证书", "6"),
        ("6", "民办非企业单位登记证书", "7"),
        ("7", "基金会法人登记证书", "8"),
        ("8", "军队代号", "1"),
        ("9", "律师事务所执业许可证", "9"),
        ("10", "外国在华文化中心登记证", "10"),
        ("11", "宗教活动场所登记证", "13"),
        ("12", "医疗机构执业许可证", "15"),
        ("13", "司法鉴定许可证", "12"),
        ("14", "公证机构执业证", "16"),
        ("15", "外国企业常驻代表机构登记证", "14"),
        ("16", "居民身份证", "5"),
        ("17", "护照", "5"),
        ("18", "港澳居民来往内地通行证", "5"),
        ("19", "台湾居民来往大陆通行证", "5"),
        ("20", "外国人永久居留身份证", "5"),
        ("21", "港澳居民居住证", "5"),
        ("22", "台湾居民居住证", "5"),
    ],
    CodeTable.SERVICE_CONTENT: [
        ("1", "综合门户", None), ("2", "单位门户网站", None), ("3", "搜索引擎", None),
        ("4", "网络新闻", None), ("5", "博客/个人空间", None), ("6", "网络购物", None),
        ("7", "网络游戏", None), ("8", "网络音乐", None), ("9", "网络视频", None),
        ("10", "网络广告", None), ("11", "网上炒股/股票行情", None), ("12", "网络教育", None),
        ("13", "网络出版", None), ("14", "网络文学", None), ("15", "即时通信", None),
        ("16", "电子邮箱", None), ("17", "网上银行/支付", None), ("18", "旅游服务", None),
        ("19", "求职招聘", None), ("20", "房产", None), ("21", "汽车", None),
        ("22", "医疗健康", None), ("23", "论坛/社区", None), ("24", "网络图片", None),
        ("25", "软件下载", None), ("99", "其他", None),
    ],
    CodeTable.PREAPPROVAL_CATEGORY: [
        ("1", "新闻", None), ("2", "出版", None), ("3", "教育", None), ("4", "医疗保健", None),
        ("5", "药品和医疗器械", None), ("6", "文化", None), ("7", "广播电影电视节目", None),
    ],
    CodeTable.ACCESS_METHOD: [
        ("1", "专线", None), ("2", "主机托管", None), ("3", "虚拟主机", None), ("9", "其他", None),
    ],
    CodeTable.LANGUAGE: [
        ("1", "中文简体", None), ("2", "中文繁体", None), ("3", "英语", None), ("4", "日语", None),
        ("5", "韩语", None), ("6", "俄语", None), ("7", "法语", None), ("8", "德语", None),
        ("9", "西班牙语", None), ("10", "阿拉伯语", None), ("11", "葡萄牙语", None),
        ("12", "蒙古语", None), ("13", "藏语", None), ("14", "维吾尔语", None),
        ("15", "壮语", None), ("16", "朝鲜语", None), ("99", "其他", None),
    ],
    CodeTable.UNIT_CLASS: [
        ("1", "基础电信业务经营者", None), ("2", "互联网接入服务提供者", None),
        ("3", "互联网数据中心（IDC）", None), ("4", "内容分发网络（CDN）", None),
        ("5", "云服务提供者", None), ("6", "政府机关", None), ("7", "事业单位", None),
        ("8", "企业", None), ("9", "社会团体", None), ("10", "个人", None), ("99", "其他", None),
    ],
    CodeTable.INDUSTRY: [  # GB/T 4754-2017 门类
        ("A", "农、林、牧、渔业", None), ("B", "采矿业", None), ("C", "制造业", None),
        ("D", "电力、热力、燃气及水生产和供应业", None), ("E", "建筑业", None),
        ("F", "批发和零售业", None), ("G", "交通运输、仓储和邮政业", None),
        ("H", "住宿和餐饮业", None), ("I", "信息传输、软件和信息技术服务业", None),
        ("J", "金融业", None), ("K", "房地产业", None), ("L", "租赁和商务服务业", None),
        ("M", "科学研究和技术服务业", None), ("N", "水利、环境和公共设施管理业", None),
        ("O", "居民服务、修理和其他服务业", None), ("P", "教育", None),
        ("Q", "卫生和社会工作", None), ("R", "文化、体育和娱乐业", None),
        ("S", "公共管理、社会保障和社会组织", None), ("T", "国际组织", None),
    ],
    CodeTable.IP_ALLOCATION_METHOD: [
        ("1", "分配并使用", None), ("2", "再分配", None), ("3", "自用", None), ("4", "预留", None),
    ],
    CodeTable.IP_USAGE_METHOD: [("1", "静态", None), ("2", "动态", None), ("3", "未知", None)],
    CodeTable.DOMAIN_TYPE: [
        ("1", "通用顶级域名", None), ("2", "国家和地区顶级域名", None), ("3", "中文域名", None),
        ("4", "新通用顶级域名", None), ("9", "其他", None),
    ],
    CodeTable.IP_REGISTRY: [
        ("APNIC", "亚太互联网络信息中心（APNIC）", None), ("CNNIC", "中国互联网络信息中心（CNNIC）", None),
        ("ARIN", "美洲互联网号码注册管理机构（ARIN）", None), ("RIPE", "欧洲网络协调中心（RIPE NCC）", None),
        ("LACNIC", "拉丁美洲及加勒比互联网地址注册管理机构（LACNIC）", None),
        ("AFRINIC", "非洲网络信息中心（AFRINIC）", None), ("IANA", "互联网号码分配机构（IANA）", None),
    ],
}


def seed_code_tables() -> int:
    """Insert the values that are missing; never overwrite what MIIT edited. Returns rows added."""
    added = 0
    known_provinces = set(db.session.scalars(select(Province.code)))
    for order, (code, name, abbr) in enumerate(PROVINCES):
        if code not in known_provinces:
            db.session.add(Province(code=code, name=name, abbr=abbr, sort_order=order, active=True))
            added += 1
    known_items = set(db.session.execute(select(CodeItem.table, CodeItem.code)).all())
    for table, rows in CODE_TABLES.items():
        for order, (code, name, extra) in enumerate(rows):
            if (table, code) not in known_items:
                db.session.add(CodeItem(table=table, code=code, name=name, extra=extra,
                                        sort_order=order, active=True))
                added += 1
    db.session.flush()
    return added


def _division_rows() -> list[dict[str, object]]:
    """Cities (level 2, parent the province) and counties (level 3, parent the city); a parent's code is the
    child's with its last digits zeroed (GB/T 2260)."""
    data = json.loads(DIVISIONS_FILE.read_text(encoding="utf-8"))
    return ([{"code": code, "name": name, "parent_code": code[:2] + "0000", "level": 2}
             for code, name in data["cities"]]
            + [{"code": code, "name": name, "parent_code": code[:4] + "00", "level": 3}
               for code, name in data["counties"]])


def seed_divisions() -> int:
    """Insert the cities and counties that are missing; never overwrite. Returns rows added."""
    known = set(db.session.scalars(select(Division.code)))
    missing = [row for row in _division_rows() if row["code"] not in known]
    if missing:
        db.session.execute(insert(Division), missing)
    return len(missing)
