"""Rosters as offices send them: merged titles, GBK CSV, float-corrupted identity numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap.crs import wgs84_to_gcj02
from gridmap.errors import InvalidInput
from gridmap.roster_synth import fake_grids, synthetic_roster, write_roster
from gridmap.rosters import (
    check_id_number,
    decrypt_id_number,
    encrypt_id_number,
    parse_date,
    protect_id_number,
    read_roster,
)

W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]  # GB 11643 weights, written out


def valid_id(body17: str) -> str:
    """Independent check digit: 1-0-X-9-8-7-6-5-4-3-2 for remainders 0..10."""
    return body17 + "10X98765432"[sum(int(c) * w for c, w in zip(body17, W, strict=True)) % 11]


ID1 = valid_id("42050219850317123")
ID2 = valid_id("42050319920704456")
ID3 = valid_id("42050419780911789")
HEADER = ["序号", "姓名", "性别", "身份证号", "手机号", "角色", "所属社区", "经纬度", "入职日期"]


def _xlsx(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["西陵区网格员及法律明白人花名册（2024年）"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(header))
    ws.append(header)
    for r in rows:
        ws.append(r)
    ws.append([])  # trailing blank row as offices leave them
    wb.save(path)
    return path


def _msgs(report, row: int) -> str:  # type: ignore[no-untyped-def]
    return " ".join(next(r for r in report.reports if r.row == row).messages)


def test_xlsx_with_merged_title_and_chinese_headers(tmp_path: Path) -> None:
    rows = [
        [
            1,
            "王伟",
            "男",
            ID1,
            "13800001111",
            "网格员",
            "420502001001",
            "111.29,30.70",
            dt.datetime(2023, 1, 5),
        ],
        [
            2,
            "李娜",
            "女",
            ID2,
            13900002222.0,
            "人民调解员、普法宣传员",
            "420502001002",
            "111.30, 30.71",
            44931,
        ],
        [
            3,
            "张敏",
            "女",
            ID3,
            "139 0000 3333",
            "律师",
            "420502001001",
            "30.69,111.28",
            "2023年1月5日",
        ],
    ]
    rep = read_roster(_xlsx(tmp_path / "roster.xlsx", rows))
    assert rep.ok and rep.header_row == 2 and len(rep.rows) == 3
    a, b, c = rep.rows
    assert (a["role"], b["roles"], c["role"]) == (
        "grid_manager",
        ["mediator", "publicity"],
        "legal_professional",
    )
    assert a["start_date"] == b["start_date"] == c["start_date"] == "2023-01-05"
    assert b["phone"] == "13900002222" and c["phone"] == "13900003333"
    assert a["birth_date"] == "1985-03-17" and a["gender"] == "M"
    assert (c["lon"], c["lat"]) == (111.28, 30.69)  # lat,lon order detected and swapped
    assert "swapped" in _msgs(rep, 5)


def test_gbk_csv_is_detected(tmp_path: Path) -> None:
    text = f"姓名,身份证号,角色,住址\n陈静,{ID1},调解员,西陵区夷陵大道58号\n"
    path = tmp_path / "gbk.csv"
    path.write_bytes(text.encode("gbk"))
    rep = read_roster(path)
    assert rep.ok and rep.encoding == "gb18030"
    assert rep.rows[0]["name"] == "陈静" and rep.rows[0]["address"].startswith("西陵区")
    with pytest.raises(UnicodeDecodeError):
        read_roster(path, encoding="utf-8")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(text.encode("utf-8-sig"))
    assert read_roster(bom).rows[0]["name"] == "陈静"


@pytest.mark.parametrize(
    "cell", [4.20502199001011e17, 420502199001011000, "4.20502199001011E+17", "420502199001011000"]
)
def test_numeric_id_number_is_rejected_with_text_format_message(tmp_path: Path, cell) -> None:  # type: ignore[no-untyped-def]
    rows = [
        [1, "王伟", "男", cell, "13800001111", "网格员", "420502001001", "111.29,30.70", None],
        [2, "李娜", "女", ID2, "13900002222", "网格员", "420502001001", "111.3,30.7", None],
    ]
    rep = read_roster(_xlsx(tmp_path / "float.xlsx", rows))
    assert not rep.ok and [r.row for r in rep.errors] == [3]
    msg = _msgs(rep, 3)
    assert "text" in msg and "身份证号" in msg
    assert [r["name"] for r in rep.rows] == ["李娜"]


def test_wrong_check_digit_duplicate_and_unknown_role(tmp_path: Path) -> None:
    wrong = ID1[:17] + ("0" if ID1[17] != "0" else "1")
    rows = [
        [1, "王伟", "男", wrong, None, "网格员", None, "111.29,30.70", None],
        [2, "李娜", "女", ID2, None, "保安", None, "111.29,30.70", None],
        [3, "张敏", "女", ID3, None, "网格员", None, "111.29,30.70", "2023-13-01"],
        [4, "刘洋", "男", ID2, None, "网格员", None, None, None],
    ]
    rep = read_roster(_xlsx(tmp_path / "bad.xlsx", rows))
    assert [r.row for r in rep.errors] == [3, 4, 5, 6]
    assert "check digit" in _msgs(rep, 3) and ID1 not in _msgs(rep, 3)  # masked, never in full
    assert "unknown role '保安'" in _msgs(rep, 4)
    assert "not a date" in _msgs(rep, 5)
    assert "no location" in _msgs(rep, 6)
    assert "duplicate" not in _msgs(rep, 6)  # row 4 failed, so row 6 is the first ID2 kept
    assert "row 3:" in rep.summary() and "********" in rep.summary()


@pytest.mark.parametrize(
    "value",
    [
        "2023-01-05",
        "2023/1/5",
        "2023.1.5",
        "2023年1月5日",
        "20230105",
        20230105,
        44931,
        "44931",
        dt.date(2023, 1, 5),
        dt.datetime(2023, 1, 5, 8, 30),
        "2023-01-05 00:00:00",
    ],
)
def test_mixed_date_formats(value) -> None:  # type: ignore[no-untyped-def]
    assert parse_date(value) == dt.date(2023, 1, 5)


def test_gcj02_coordinates_are_converted(tmp_path: Path) -> None:
    lon, lat = 111.2865, 30.6920
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    csv = f"姓名,身份证号,角色,经度,纬度,坐标系\n甲,{ID1},网格员,{glon},{glat},gcj02\n"
    csv += f"乙,{ID2},网格员,{glon},{glat},\n"
    path = tmp_path / "amap.csv"
    path.write_text(csv, encoding="utf-8")
    first, second = read_roster(path).rows
    assert abs(first["lon"] - lon) < 1e-6 and abs(first["lat"] - lat) < 1e-6
    assert abs(second["lon"] - glon) < 1e-7  # no system given: taken as WGS84
    assert abs(second["lon"] - lon) > 3e-3  # and GCJ-02 is hundreds of metres off
    both = read_roster(path, coord_sys="gcj02").rows
    assert abs(both[1]["lon"] - lon) < 1e-6
    hinted = tmp_path / "hint.csv"
    hinted.write_text(
        f"姓名,身份证号,角色,经度(GCJ-02),纬度(GCJ-02)\n甲,{ID1},网格员,{glon},{glat}\n"
    )
    assert abs(read_roster(hinted).rows[0]["lat"] - lat) < 1e-6
    plain = tmp_path / "degrees.csv"
    plain.write_text(f"姓名,身份证号,角色,经度(°),纬度(°)\n甲,{ID1},网格员,{lon},{lat}\n")
    assert read_roster(plain).rows[0]["lon"] == lon


def test_care_subjects_pseudonymous(tmp_path: Path) -> None:
    csv = (
        "编号,姓名,类别,所属网格,经纬度\nCS001,某某,社区矫正,420502001001001,111.29,30.70\n"
        "CS002,,安置帮教,420502001001002,\nCS003,,吸毒人员,42050200100,\nCS001,,刑满释放,,\n"
    )
    path = tmp_path / "care.csv"
    path.write_text(csv.replace(",111.29,30.70", ',"111.29,30.70"'), encoding="utf-8")
    rep = read_roster(path, kind="care_subjects")
    assert any("姓名" in w for w in rep.warnings)
    assert rep.rows[0]["category"] == "community_correction" and "name" not in rep.rows[0]
    assert rep.rows[1]["category"] == "released" and rep.rows[1]["lon"] is None
    assert [r.row for r in rep.errors] == [4, 5]
    assert "15 digits" in _msgs(rep, 4) and "duplicate of row 2" in _msgs(rep, 5)


def test_header_missing_and_old_xls(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="header"):
        read_roster(b"a,b,c\n1,2,3\n")
    with pytest.raises(InvalidInput, match="xlsx"):
        read_roster(b"\xd0\xcf\x11\xe0" + b"\0" * 100)


@settings(max_examples=200, deadline=None)
@given(
    st.dates(dt.date(1930, 1, 1), dt.date(2005, 12, 31)),
    st.integers(1, 998),
    st.integers(0, 16),
    st.integers(1, 9),
)
def test_check_digit_catches_every_single_digit_error(born, seq, pos, delta) -> None:  # type: ignore[no-untyped-def]
    good = valid_id(f"420502{born:%Y%m%d}{seq:03d}")
    if good.endswith("000"):
        return
    assert check_id_number(good.lower()) == good
    bad = good[:pos] + str((int(good[pos]) + delta) % 10) + good[pos + 1 :]
    with pytest.raises(InvalidInput):
        check_id_number(bad)


def test_protect_id_number() -> None:
    key = b"k" * 32
    h1, masked = protect_id_number(ID1, key)
    assert masked == ID1[:6] + "********" + ID1[-4:]
    assert h1 == protect_id_number(ID1, key)[0] != protect_id_number(ID1, b"j" * 32)[0]
    assert h1 != protect_id_number(ID2, key)[0]
    with pytest.raises(InvalidInput):
        protect_id_number(ID1, b"short")


def test_encrypt_round_trip() -> None:
    pytest.importorskip("cryptography")
    key = b"k" * 32
    token = encrypt_id_number(ID1, key)
    assert ID1 not in token and token != encrypt_id_number(ID1, key)  # random nonce
    assert decrypt_id_number(token, key) == ID1
    with pytest.raises(InvalidInput):
        decrypt_id_number(token, b"j" * 32)


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_synthetic_roster_round_trips(tmp_path: Path, suffix: str) -> None:
    roster = synthetic_roster(fake_grids(30, seed=2), seed=2)
    path = write_roster(roster.staff, tmp_path / f"staff{suffix}", encoding="gb18030")
    rep = read_roster(path)
    assert rep.ok, rep.summary()
    got = pd.DataFrame(rep.rows)
    assert got["id_number"].tolist() == roster.staff["id_number"].tolist()
    assert got["role"].tolist() == roster.staff["role"].tolist()
    assert (got["lon"] - roster.staff["lon"]).abs().max() < 1e-9
    care = write_roster(roster.care_subjects, tmp_path / f"care{suffix}", "care_subjects")
    crep = read_roster(care, kind="care_subjects")
    assert crep.ok and len(crep.rows) == len(roster.care_subjects)


def test_synthetic_roster_is_deterministic_and_in_proportion() -> None:
    grids = fake_grids(300, seed=5)
    a, b = synthetic_roster(grids, seed=5), synthetic_roster(grids, seed=5)
    pd.testing.assert_frame_equal(a.staff, b.staff)
    pd.testing.assert_frame_equal(a.care_subjects, b.care_subjects)
    assert not synthetic_roster(grids, seed=6).staff["id_number"].equals(a.staff["id_number"])
    roles = a.staff["role"].value_counts()
    assert roles["grid_manager"] == 300 - 9
    assert 300 < roles["mediator"] < 420 and 80 < roles["legal_professional"] < 120
    assert a.staff["id_number"].map(check_id_number).tolist() == a.staff["id_number"].tolist()
    assert a.staff["id_number"].is_unique and a.staff["phone"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert a.staff["id_number"].str[:6].isin(["420502", "420503", "420504", "420505"]).all()
    share = (a.care_subjects["category"] == "community_correction").mean()
    assert 0.2 < share < 0.4 and abs(len(a.care_subjects) - grids.households.sum() / 250) < 60
    per_grid = a.care_subjects.groupby("grid").size().reindex(grids.code, fill_value=0)
    vols = a.staff[a.staff.role == "care_volunteer"].groupby("grid").size()
    gap = (-(-per_grid // 5) - vols.reindex(grids.code, fill_value=0)).clip(lower=0)
    assert 0 < gap.sum() < per_grid.sum() / 5  # some shortfall, not a collapse


def test_scenario_grids_keep_households_and_codes(tmp_path: Path) -> None:
    from gridmap.roster_synth import scenario_grids

    rows = ["id,community,lon,lat,households,residents"]
    for i in range(60):
        comm = "420502001001" if i < 45 else "420503002201"
        rows.append(f"{i},{comm},{111.28 + (i % 9) * 0.002},{30.70 + (i // 9) * 0.002},{i + 1},0")
    (tmp_path / "households.csv").write_text("\n".join(rows) + "\n")
    grids = scenario_grids(tmp_path, n_grids=8, seed=1)
    assert grids["households"].sum() == sum(range(1, 61))
    assert grids["code"].str.fullmatch(r"\d{15}").all() and grids["code"].is_unique
    assert set(grids["code"].str[:12]) == {"420502001001", "420503002201"}
    assert 6 <= len(grids) <= 8 and grids["x"].between(111.27, 111.31).all()
