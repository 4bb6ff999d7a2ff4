"""Read staff and care-subject rosters as government offices keep them (CSV or ``.xlsx``).

Offices send Excel workbooks with a merged title row over Chinese headers, CSV saved as GBK,
dates in four styles and identity numbers that Excel has turned into floats. We read them all,
report every problem per row (row numbers as the office sees them) and never guess an identity
number: a float-corrupted 身份证号 is rejected with a message saying to format the column as text.
Identity-number and date helpers live in :mod:`gridmap.idnumbers` (re-exported here).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridmap.crs import normalize_crs, to_wgs84
from gridmap.errors import InvalidInput, ServiceUnavailable, ValidationFailed
from gridmap.idnumbers import (
    _norm,
    check_id_number,
    decrypt_id_number,
    encrypt_id_number,
    id_check_digit,
    mask_id_number,
    parse_date,
    protect_id_number,
)

__all__ = [
    "CATEGORIES",
    "ROLES",
    "RosterReport",
    "RowReport",
    "check_id_number",
    "decrypt_id_number",
    "encrypt_id_number",
    "id_check_digit",
    "mask_id_number",
    "parse_date",
    "protect_id_number",
    "read_roster",
]

# code, then the names offices write (role cells and category cells are matched on these)
_ROLE_TABLE = """
grid_manager        网格员 网格长 专职网格员 gridmanager
mediator            人民调解员 调解员
legal_professional  法律服务工作者 律师 法律顾问 lawyer
publicity           普法宣传员 法治宣传员
legal_aid           法律援助 法律援助联络员 法律援助员
care_volunteer      志愿者 帮教志愿者 volunteer
community_correction  社区矫正 社区矫正对象 矫正
released            刑满释放 刑满释放人员 安置帮教 安置帮教对象 刑释
other               其他
"""
# field, kinds (s: staff, c: care subjects), then the headers offices use with English aliases
_HEADER_TABLE = """
name        s   姓名 name
gender      s   性别 gender sex
id_number   s   身份证号 身份证号码 公民身份号码 身份证 id_number idnumber
phone       s   手机号 手机号码 手机 联系电话 电话 phone mobile
role        s   角色 岗位 职务 role
staff_id    s   工号 人员编号 staff_id
birth_date  s   出生日期 出生年月日 birth_date
capacity    s   可服务网格数 capacity
start_date  s   入职日期 任职日期 上岗日期 start_date
code        c   编号 人员编号 code
category    c   类别 人员类别 对象类别 category
start_date  c   开始日期 入矫日期 释放日期 start_date
current_volunteer  c  帮教志愿者 志愿者 current_volunteer
community   sc  所属社区 社区 社区(村) community
grid        sc  所属网格 网格 网格编码 网格编号 grid
address     sc  住址 家庭住址 居住地址 现住址 地址 address
lonlat      sc  经纬度 坐标 lonlat coordinates
lon         sc  经度 lon lng longitude
lat         sc  纬度 lat latitude
coord_sys   sc  坐标系 coord_sys crs
"""
_CODES = {w[0]: w[1:] for w in map(str.split, _ROLE_TABLE.strip().splitlines())}
ROLES = tuple(list(_CODES)[:6])
CATEGORIES = tuple(list(_CODES)[6:])
_ROLE = {n: c for c in ROLES for n in [c.replace("_", ""), *_CODES[c]]}
_CATEGORY = {n: c for c in CATEGORIES for n in [c.replace("_", ""), *_CODES[c]]}
_HEADERS: dict[str, dict[str, list[str]]] = {"staff": {}, "care_subjects": {}}
for _f, _kinds, *_names in map(str.split, _HEADER_TABLE.strip().splitlines()):
    for _k in _kinds:
        _HEADERS["staff" if _k == "s" else "care_subjects"][_f] = _names
_PRIVATE = {"姓名", "name", "身份证号", "身份证号码", "公民身份号码", "手机号", "联系电话"}
_REQUIRED = {"staff": ("name", "id_number", "role"), "care_subjects": ("code", "category")}


def _key(header: Any) -> str:
    s = _norm(header) if isinstance(header, str) else ""
    return re.sub(r"[\s*_]|\(.*?\)$", "", (s or "").lower())


def _role(v: Any) -> list[str]:
    out = []
    for part in re.split(r"[、,;/|]", str(v)):
        code = _ROLE.get(re.sub(r"[\s_-]", "", part.lower()))
        if code is None:
            raise InvalidInput(f"unknown role {part!r}; expected one of {', '.join(ROLES)}")
        out.append(code)
    return out


def _gender(v: Any) -> str:
    g = {"男": "M", "m": "M", "male": "M", "1": "M", "女": "F", "f": "F", "female": "F", "2": "F"}
    if str(v).lower() not in g:
        raise InvalidInput(f"unknown gender {v!r} (use 男 or 女)")
    return g[str(v).lower()]


def _phone(v: Any) -> str:
    s = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    s = re.sub(r"[\s()-]", "", s).removeprefix("+86")
    if not re.fullmatch(r"1[3-9]\d{9}|0\d{9,11}", s):
        raise InvalidInput(f"phone {s!r} is neither a mobile (1xx, 11 digits) nor a landline")
    return s


def _lonlat(x: Any, y: Any, msgs: list[str]) -> tuple[float, float]:
    lon, lat = float(x), float(y)
    if not (73 <= lon <= 136 and 3 <= lat <= 54) and (73 <= lat <= 136 and 3 <= lon <= 54):
        msgs.append("warning: 经纬度 given as lat,lon; swapped")
        lon, lat = lat, lon
    if not (73 <= lon <= 136 and 3 <= lat <= 54):
        raise InvalidInput(f"coordinates {x}, {y} are not a lon/lat in China")
    return lon, lat


@dataclass
class RowReport:
    """One data row: its number in the file, ``ok`` or ``error``, and what was found."""

    row: int
    status: str
    messages: list[str] = field(default_factory=list)


@dataclass
class RosterReport:
    """Outcome of :func:`read_roster`: clean records for ok rows and a report for every row."""

    kind: str
    encoding: str | None
    header_row: int
    columns: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    reports: list[RowReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no row has an error (a commit imports all rows or none)."""
        return not self.errors

    @property
    def errors(self) -> list[RowReport]:
        return [r for r in self.reports if r.status == "error"]

    def summary(self) -> str:
        """Per-row dry-run report; identity numbers appear masked only."""
        lines = [f"{self.kind}: {len(self.rows)} ok, {len(self.errors)} with errors"]
        lines += [f"note: {w}" for w in self.warnings]
        lines += [
            f"row {r.row}: {r.status}: {'; '.join(r.messages)}" for r in self.reports if r.messages
        ]
        return "\n".join(lines)


def _load(source: str | Path | bytes) -> bytes:
    return bytes(source) if isinstance(source, bytes | bytearray) else Path(source).read_bytes()


def _decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding:
        return data.decode(encoding), encoding
    for bom, enc in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(enc), enc
    for enc in ("utf-8", "gb18030"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the CSV is neither UTF-8 nor GB18030/GBK; pass encoding=")


def _csv_rows(text: str) -> Iterator[tuple[int, list[Any]]]:
    head = text.splitlines()[:10]
    delim = max(",\t;", key=lambda d: sum(line.count(d) for line in head))
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    for row in reader:
        yield reader.line_num, list(row)


def _xlsx_rows(data: bytes, sheet: str | int | None) -> Iterator[tuple[int, list[Any]]]:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover
        raise ServiceUnavailable("reading .xlsx needs the 'openpyxl' package") from None
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    names = wb.sheetnames
    ws = wb[names[sheet] if isinstance(sheet, int) else (sheet or names[0])]
    for i, row in enumerate(ws.iter_rows(values_only=True), start=1):
        yield i, list(row)
    wb.close()


def _system(name: str) -> str | None:
    try:
        return normalize_crs(name)
    except InvalidInput:
        return None


def _header(rows: list[tuple[int, list[Any]]], kind: str) -> tuple[int, dict[str, int], dict]:
    """The row (among the first 10) matching most known headers: title rows above are skipped."""
    aliases = {_key(a): f for f, names in _HEADERS[kind].items() for a in names}
    best: tuple[int, int, dict[str, int], dict[str, str]] = (0, -1, {}, {})
    for pos, (_, row) in enumerate(rows[:10]):
        found: dict[str, int] = {}
        hint: dict[str, str] = {}
        for j, cell in enumerate(row):
            f = aliases.get(_key(cell))
            if f and f not in found:
                found[f] = j
                m = re.search(r"\((.+?)\)$", str(_norm(cell)))
                hint[f] = m[1] if m and _system(m[1]) else ""
        if len(found) > len(best[2]):
            best = (len(found), pos, found, hint)
    if best[0] < 2:
        raise InvalidInput(
            f"no {kind} header row (姓名, 身份证号, 角色 … or 编号, 类别 …) found "
            "in the first 10 rows"
        )
    return best[1], best[2], best[3]


def read_roster(
    path_or_bytes: str | Path | bytes,
    *,
    kind: str = "staff",
    encoding: str | None = None,
    sheet: str | int | None = None,
    coord_sys: str | None = None,
    communities: Mapping[str, str] | None = None,
    today: dt.date | None = None,
) -> RosterReport:
    """Read a CSV or ``.xlsx`` roster of ``kind`` ``staff`` or ``care_subjects``.

    ``coord_sys`` is the default system of coordinates (a 坐标系 column or a header such as
    ``经度(GCJ-02)`` overrides it); ``communities`` maps names to 12-digit codes when given.
    Records of ok rows hold WGS84 ``lon``/``lat``, ISO dates and role or category codes (a cell
    naming several roles, 调解员、普法宣传员, gives ``roles`` and the first as ``role``). Identity
    numbers are returned in full for the caller to protect (:func:`protect_id_number`); reports
    and messages show them masked only.
    """
    if kind not in _HEADERS:
        raise InvalidInput(f"kind must be 'staff' or 'care_subjects', not {kind!r}")
    data = _load(path_or_bytes)
    enc: str | None = None
    if data[:4] == b"PK\x03\x04":
        rows = list(_xlsx_rows(data, sheet))
    elif data[:4] == b"\xd0\xcf\x11\xe0":
        raise InvalidInput("old .xls workbooks are not read; save the file as .xlsx or CSV")
    else:
        text, enc = _decode(data, encoding)
        rows = list(_csv_rows(text))
    pos, cols, hint = _header(rows, kind)
    header = rows[pos][1]
    missing = [f for f in _REQUIRED[kind] if f not in cols]
    if missing:
        raise ValidationFailed(
            f"missing columns: {', '.join(missing)}", details=[{"column": f} for f in missing]
        )
    report = RosterReport(kind, enc, rows[pos][0], {f: str(header[j]) for f, j in cols.items()})
    if kind == "care_subjects":
        private = [str(_norm(c)) for c in header if _key(c) in _PRIVATE]
        if private:
            report.warnings.append(
                f"columns {', '.join(private)} ignored: care subjects are "
                "kept under a pseudonymous code only"
            )
    default_sys = normalize_crs(coord_sys or hint.get("lon") or hint.get("lonlat") or None)
    seen: dict[str, int] = {}
    points: list[tuple[dict[str, Any], float, float, str]] = []
    for line, raw in rows[pos + 1 :]:
        vals = {f: _norm(raw[j]) if j < len(raw) else None for f, j in cols.items()}
        if all(v is None for v in vals.values()):
            continue
        msgs: list[str] = []
        rec: dict[str, Any] = {"row": line}
        for f, v in vals.items():
            try:
                _field(f, v, rec, msgs, communities, today)
            except (InvalidInput, ValueError) as exc:
                msgs.append(f"{report.columns[f]}: {getattr(exc, 'message', exc)}")
        _consistency(rec, msgs)
        for f in _REQUIRED[kind]:
            if vals[f] is None:
                msgs.append(f"{report.columns[f]} is empty")
        uid = rec.get("id_number") or rec.get("code")
        if uid and uid in seen:
            msgs.append(f"duplicate of row {seen[uid]}")
        try:
            xy = _point(vals, msgs)
            system = normalize_crs(vals.get("coord_sys") or default_sys)
        except (InvalidInput, ValueError) as exc:
            msgs.append(f"location: {getattr(exc, 'message', exc)}")
            xy, system = None, "wgs84"
        if xy is None and not (rec.get("address") or rec.get("grid")):
            msgs.append("no location: give 住址, 经纬度 or 经度/纬度")
        bad = any(not m.startswith("warning:") for m in msgs)
        report.reports.append(RowReport(line, "error" if bad else "ok", msgs))
        if not bad:
            seen[str(uid)] = line
            rec.update(lon=None, lat=None)
            report.rows.append(rec)
            if xy:
                points.append((rec, xy[0], xy[1], system))
    for rec, x, y, system in points:  # GCJ-02/BD-09 → WGS84 at the edge
        lon, lat = to_wgs84(x, y, system)
        rec.update(lon=round(float(lon), 7), lat=round(float(lat), 7), coord_sys_in=system)
    return report


def _point(vals: dict[str, Any], msgs: list[str]) -> tuple[float, float] | None:
    if vals.get("lon") is not None and vals.get("lat") is not None:
        return _lonlat(vals["lon"], vals["lat"], msgs)
    if vals.get("lonlat") is not None:
        nums = re.findall(r"-?\d+(?:\.\d+)?", str(vals["lonlat"]))
        if len(nums) != 2:
            raise InvalidInput(f"经纬度 {vals['lonlat']!r} is not 'lon,lat'")
        return _lonlat(nums[0], nums[1], msgs)
    return None


def _field(
    f: str,
    v: Any,
    rec: dict[str, Any],
    msgs: list[str],
    communities: Mapping[str, str] | None,
    today: dt.date | None,
) -> None:
    """Parse one cell into ``rec`` (raising InvalidInput with a message for the row report)."""
    if v is None or f in ("lon", "lat", "lonlat", "coord_sys"):
        return
    if f == "id_number":
        rec[f] = check_id_number(v, today=today)
    elif f == "role":
        rec["roles"] = _role(v)
        rec["role"] = rec["roles"][0]
    elif f == "category":
        rec[f] = _CATEGORY.get(re.sub(r"[\s_]", "", str(v).lower()), "other")
        if rec[f] == "other" and str(v).lower() != "other":
            msgs.append(f"warning: category {v!r} recorded as other")
    elif f in ("birth_date", "start_date"):
        d = parse_date(v)
        rec[f] = d.isoformat() if d else None
    elif f == "gender":
        rec[f] = _gender(v)
    elif f == "phone":
        rec[f] = _phone(v)
    elif f == "capacity":
        rec[f] = int(v)
    elif f == "community":
        s = str(int(v)) if isinstance(v, int | float) else str(v)
        if re.fullmatch(r"\d{12}", s):
            rec["community"] = s
        elif communities is not None:
            if s not in communities:
                raise InvalidInput(f"unknown community {s!r}")
            rec["community"] = communities[s]
        else:
            rec["community_name"] = s
    elif f == "grid":
        s = str(int(v)) if isinstance(v, int | float) else str(v)
        if not re.fullmatch(r"\d{15}", s):
            raise InvalidInput(f"grid code {s!r} must have 15 digits")
        rec[f] = s
    else:
        rec[f] = str(v)


def _consistency(rec: dict[str, Any], msgs: list[str]) -> None:
    """Birth date and gender follow from the 身份证号; a disagreeing column is only a warning."""
    s = rec.get("id_number")
    if not s:
        return
    born, gender = f"{s[6:10]}-{s[10:12]}-{s[12:14]}", "M" if int(s[16]) % 2 else "F"
    if rec.setdefault("birth_date", born) != born:
        msgs.append("warning: 出生日期 does not match 身份证号")
    if rec.setdefault("gender", gender) != gender:
        msgs.append("warning: 性别 does not match 身份证号")
