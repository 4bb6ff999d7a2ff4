"""The planner page in real headless Chromium: sign in, open a draft, split a grid by drawing a
line with the mouse, merge two grids by clicking them, undo/redo, see a refused edit, validate,
preview the impact and publish — all offline (every non-loopback request is aborted)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import shapely
from playwright.sync_api import Browser, Page
from shapely.geometry import shape
from sqlalchemy import Engine

from gridmap.settings import Settings
from gridmap.store.db import session_scope
from gridmap.store.grids import publish_version, run_gridding, select_communities
from gridmap.store.users import add_user
from tests.e2e.test_maps import (
    SHOTS,
    Offline,
    bearer,
    browser,  # noqa: F401  (the module's Chromium fixture)
)
from tests.helpers import COMMUNITY

PASSWORD = "planner-pass-2026"


@pytest.fixture
def gridded(community: Engine) -> Engine:
    with session_scope(community) as s:
        r = run_gridding(s, select_communities(s), user="t", n_grids=6)
        publish_version(s, r.version_id, user="t")
        add_user(s, "plan", "planner", "420502", PASSWORD)
    return community


def _screen(page: Page, lon: float, lat: float) -> tuple[float, float]:
    """Page pixel of a lon/lat on the planner's Leaflet map."""
    x, y = page.evaluate(
        """([lat, lon]) => {
            const p = window.gridmapPlanner.map.latLngToContainerPoint([lat, lon]);
            const r = document.getElementById('map').getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }""",
        [lat, lon],
    )
    return float(x), float(y)


def _click(page: Page, point: Any) -> None:
    """A real pointer click: move there first (Leaflet.draw places vertices on mouse-up after
    a move, as a hand would), then press and release."""
    x, y = _screen(page, point.x, point.y)
    page.mouse.move(x - 3, y - 3)
    page.mouse.move(x, y, steps=4)
    page.mouse.down()
    page.mouse.up()


def _wait(page: Page, attr: str, value: Any) -> None:
    page.wait_for_function(
        f"() => document.body.dataset.busy !== '1' && document.body.dataset.{attr} === '{value}'",
        timeout=60_000,
    )


def _signed_in(browser: Browser, server: str) -> Offline:  # noqa: F811
    """An offline tab on the planner page of the test community, signed in as the planner."""
    tab = Offline(browser, {})
    page = tab.page
    page.goto(f"{server}/planner?community={COMMUNITY}")
    page.fill("#user", "plan")
    page.fill("#password", PASSWORD)
    page.click("#login-btn")
    _wait(page, "ready", "1")
    return tab


def _draft_grids(server: str, settings: Settings, draft: int) -> dict[str, Any]:
    fc = httpx.get(
        f"{server}/api/v1/grids", params={"version": draft}, headers=bearer(settings, "plan")
    ).json()
    return {f["id"]: shape(f["geometry"]) for f in fc["features"]}


def test_planner_page_edits_and_publishes(
    gridded: Engine,
    server: str,
    settings: Settings,
    browser: Browser,  # noqa: F811
) -> None:
    tab = _signed_in(browser, server)
    page = tab.page
    page.click("#open-btn")
    page.wait_for_function("() => document.body.dataset.grids === '6'", timeout=60_000)
    draft = int(page.evaluate("document.body.dataset.draft"))
    assert page.locator("path.gm-draft").count() == 6
    assert page.locator("path.gm-published").count() >= 1

    # split: select the grid, draw a north-south line across it with the mouse
    grids = _draft_grids(server, settings, draft)
    code = sorted(grids)[0]
    g = grids[code]
    inside = g.representative_point()
    _click(page, inside)
    assert "已选" in page.text_content("#status")
    page.click("[data-tool=split_line]")
    south = shapely.Point(inside.x, g.bounds[1] - 0.0004)
    north = shapely.Point(inside.x, g.bounds[3] + 0.0004)
    _click(page, south)
    _click(page, north)
    _click(page, north)  # clicking the last vertex again finishes the line
    _wait(page, "grids", "7")
    assert "split_line" in page.text_content("#status")

    # merge: click two adjacent grids, then the merge button
    grids = _draft_grids(server, settings, draft)
    a, b = next(
        (x, y)
        for x in sorted(grids)
        for y in sorted(grids)
        if x < y and grids[x].intersection(grids[y]).length > 0.0003
    )
    _click(page, grids[a].representative_point())
    _click(page, grids[b].representative_point())
    page.click("[data-tool=merge]")
    _wait(page, "grids", "6")
    page.click("[data-tool=undo]")
    _wait(page, "grids", "7")
    page.click("[data-tool=redo]")
    _wait(page, "grids", "6")

    # a refused edit: two grids that do not touch
    grids = _draft_grids(server, settings, draft)
    x, y = next(
        (x, y)
        for x in sorted(grids)
        for y in sorted(grids)
        if x < y and grids[x].distance(grids[y]) > 0.0003
    )
    _click(page, grids[x].representative_point())
    _click(page, grids[y].representative_point())
    page.click("[data-tool=merge]")
    page.wait_for_selector("#status.error")
    assert page.locator("#problems li").count() >= 1
    assert page.evaluate("document.body.dataset.grids") == "6"
    page.click("[data-tool=clear]")

    # split into 3 balanced parts, then take it back
    grids = _draft_grids(server, settings, draft)
    _click(page, grids[sorted(grids)[-1]].representative_point())
    page.fill("#parts", "3")
    page.click("[data-tool=split_n]")
    _wait(page, "grids", "8")
    page.click("[data-tool=undo]")
    _wait(page, "grids", "6")
    # delete: the grid goes into its longest-edge neighbour
    _click(page, grids[sorted(grids)[-1]].representative_point())
    page.click("[data-tool=delete]")
    _wait(page, "grids", "5")
    page.click("[data-tool=undo]")
    _wait(page, "grids", "6")

    # move a building (and the land around it) into a neighbouring grid
    page.check("#show-units")
    page.wait_for_function("() => Number(document.body.dataset.units) > 0", timeout=60_000)
    grids = _draft_grids(server, settings, draft)
    units = httpx.get(
        f"{server}/api/v1/drafts/{draft}/units", headers=bearer(settings, "plan")
    ).json()["features"]
    a, b = next(
        (x, y)
        for x in sorted(grids)
        for y in sorted(grids)
        if x != y and grids[x].intersection(grids[y]).length > 0.0003
    )
    near_b = sorted(
        (u for u in units if u["properties"]["grid"] == a),
        key=lambda u: grids[b].distance(shape(u["geometry"])),
    )
    moved = None
    for u in near_b[:6]:
        page.click("[data-tool=clear]")
        page.click(f"path[data-unit='{u['id']}']")
        _click(page, grids[b].representative_point())
        page.click("[data-tool=move_units]")
        page.wait_for_function("() => document.body.dataset.busy === '0'")
        if "move_units" in page.text_content("#status"):
            moved = u
            break
    assert moved is not None, page.text_content("#status")
    after = _draft_grids(server, settings, draft)
    assert after[b].covers(shape(moved["geometry"]))
    page.click("[data-tool=validate]")
    _wait(page, "valid", "1")
    page.click("[data-tool=impact]")
    page.wait_for_function("() => document.body.dataset.impactHouseholds !== undefined")
    assert "迁移户数" in page.text_content("#impact")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "planner.png"))

    page.click("[data-tool=publish]")
    page.wait_for_function("() => document.body.dataset.published !== undefined")
    current = httpx.get(f"{server}/api/v1/grids", headers=bearer(settings, "plan")).json()
    assert {f["id"] for f in current["features"]} == set(_draft_grids(server, settings, draft))
    assert tab.foreign == [] and tab.errors == []
    tab.close()


def test_planner_generates_compares_and_publishes_plans(
    gridded: Engine,
    server: str,
    settings: Settings,
    browser: Browser,  # noqa: F811
) -> None:
    """Two plans of one community with different preferences, their figures side by side in
    the table, one shown on the map, the other published: it becomes the current grids."""
    tab = _signed_in(browser, server)
    page = tab.page
    page.fill("#hh-per-grid", "1000")
    page.select_option("#prefer", "streets")
    page.click("[data-tool=generate]")
    _wait(page, "plans", "1")
    page.select_option("#prefer", "compact")
    page.click("[data-tool=generate]")
    _wait(page, "plans", "2")
    head = bearer(settings, "plan")
    versions = httpx.get(f"{server}/api/v1/grid-versions", headers=head).json()
    drafts = {v["prefer"]: v for v in versions if v["status"] == "draft"}
    assert set(drafts) == {"streets", "compact"}
    rows = page.locator("#plans tr[data-version]")
    assert rows.count() == 2
    for i, prefer, label in ((0, "streets", "沿道路"), (1, "compact", "形状规整")):
        cells = rows.nth(i).locator("td").all_text_contents()
        v = drafts[prefer]
        assert cells[0] == str(v["id"]) and cells[1] == label and cells[2] == str(v["grids"])
        q = v["quality"]
        assert cells[3] == f"{q['cv_median']:.3f}" and cells[4] == f"{q['pp_mean']:.2f}"
        al = q["road_alignment_mean"]
        assert cells[5] == ("—" if al is None else f"{100 * al:.0f}%")
    # the newest plan is on the map; show the first one, then publish it
    shown = drafts["compact"]["id"]
    assert page.evaluate("document.body.dataset.planShown") == str(shown)
    assert page.locator("path.gm-plan").count() == drafts["compact"]["grids"]
    first = drafts["streets"]["id"]
    page.click(f"[data-show='{first}']")
    _wait(page, "planShown", str(first))
    assert page.locator("path.gm-plan").count() == drafts["streets"]["grids"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "test-planner-plans.png"))
    # refine a plan in a draft: the draft holds the plan's grids; discard it again
    page.click(f"[data-edit='{shown}']")
    page.wait_for_function(
        f"() => document.body.dataset.busy !== '1' && document.body.dataset.grids === "
        f"'{drafts['compact']['grids']}' && document.body.dataset.last === 'plan-edit'",
        timeout=60_000,
    )
    assert page.locator("path.gm-draft").count() == drafts["compact"]["grids"]
    assert "从方案" in page.text_content("#status")
    page.click("[data-tool=discard]")
    page.wait_for_function("() => document.body.dataset.last === 'discard'", timeout=60_000)
    assert "已放弃" in page.text_content("#status")
    page.click(f"[data-publish='{first}']")
    _wait(page, "planPublished", str(first))
    current = httpx.get(
        f"{server}/api/v1/grids", params={"community": COMMUNITY}, headers=head
    ).json()
    assert current["numberMatched"] == drafts["streets"]["grids"]
    statuses = {
        v["id"]: v["status"]
        for v in httpx.get(f"{server}/api/v1/grid-versions", headers=head).json()
    }
    assert statuses[first] == "published" and statuses[shown] == "draft"
    assert "现行" in rows.nth(0).text_content()
    assert page.locator(f"[data-publish='{first}']").count() == 0
    # publishing the other plan supersedes the first one, in the table too
    page.click(f"[data-publish='{shown}']")
    _wait(page, "planPublished", str(shown))
    assert "已被替换" in rows.nth(0).text_content() and "现行" in rows.nth(1).text_content()
    current = httpx.get(
        f"{server}/api/v1/grids", params={"community": COMMUNITY}, headers=head
    ).json()
    assert current["numberMatched"] == drafts["compact"]["grids"]
    assert tab.foreign == [] and tab.errors == []
    tab.close()
