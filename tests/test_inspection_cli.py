"""`flask inspection run` and `flask inspection demo-sites` (issue 18): does the command line queue the run the
workflow allows, and refuse what it refuses? Does `--now` inspect a province's websites served by the demo farm
(real HTTP on loopback), printing progress and the failing checks? Does the demo serve each website as planned —
its number linked, its real certificate — and write the static-hosts file the app reads?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

import demo_inspection
import workflow
from extensions import db
from models import Certificate, CertificateStatus, InspectionResult, InspectionRun, RunState, Website
from tests.helpers import user_named
from tests.inspection_factories import filed_website

#: one website of each behaviour (the demo's cycle of twenty, shortened)
SHORT_CYCLE = ("compliant", "missing", "unlinked", "no_cert", "old_cert", "dead", "error", "outside")


def invoke(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def _demo_website(people: dict[str, str]) -> Website:
    """A 天津 website in force filed, as `seed-demo` files them, in a private range (10.12.0.1–8) no farm serves:
    the demo's hosts file says its names have 10.12.0.1 and reaches them on loopback."""
    isp = user_named(people["isp"])
    access = workflow.AccessData(isp_id=isp.id, method="2", server_province_code="120000",
                                 ip_ranges=[("10.12.0.1", "10.12.0.8")])
    return filed_website(people, accesses=[access])


@pytest.fixture
def websites(app: Flask, people: dict[str, str]) -> list[int]:
    with app.app_context():
        return [_demo_website(people).id for _ in SHORT_CYCLE]


# --- inspection run ----------------------------------------------------------------------------------------------

def test_a_bureau_queues_a_run_of_its_province_for_the_workers(app: Flask, people: dict[str, str],
                                                                 websites: list[int]) -> None:
    result = invoke(app, "inspection", "run", "--as", people["bureau"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer | {"run": 0} == {"run": 0, "scope": "all", "province": "120000", "websites": len(websites),
                                   "state": "queued"}
    with app.app_context():
        run = db.session.get(InspectionRun, answer["run"])
        assert run.state == RunState.QUEUED and run.created_by_id == user_named(people["bureau"]).id


def test_miit_names_a_province_by_two_digits_or_the_nation(app: Flask, people: dict[str, str],
                                                           websites: list[int]) -> None:
    province = invoke(app, "inspection", "run", "--as", people["miit"], "--province", "12")
    national = invoke(app, "inspection", "run", "--as", people["miit"], "--national")
    assert json.loads(province.output)["province"] == "120000" and json.loads(national.output)["province"] is None


def test_one_isps_websites_or_a_list(app: Flask, people: dict[str, str], websites: list[int],
                                     tmp_path: Path) -> None:
    with app.app_context():
        first = db.session.get(Website, websites[0])
        listed = [first.number, first.domains[0].name]
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(listed) + "\n", encoding="utf-8")
    by_isp = invoke(app, "inspection", "run", "--as", people["bureau"], "--isp", people["isp"])
    by_list = invoke(app, "inspection", "run", "--as", people["bureau"], "--targets", str(targets))
    assert json.loads(by_isp.output) | {"run": 0} == {"run": 0, "scope": "isp", "province": "120000",
                                                      "websites": len(websites), "state": "queued"}
    assert json.loads(by_list.output)["scope"] == "list" and json.loads(by_list.output)["websites"] == 1


@pytest.mark.parametrize(("args", "words"), [
    (("--as", "bj_bureau", "--province", "12"), "只能检查本省的网站"),  # the workflow's refusal
    (("--as", "tj_isp",), ""),  # an ISP starts no run
    (("--as", "miitadmin",), "--province CODE or --national"),
    (("--as", "miitadmin", "--national", "--province", "12"), "not both"),
    (("--as", "tj_bureau", "--national"), "a bureau inspects its own province"),
    (("--as", "tj_bureau", "--isp", "nobody"), "no ISP account named nobody"),
    (("--as", "nobody",), "no active account named nobody"),
])
def test_what_the_command_or_the_workflow_refuses_queues_nothing(app: Flask, users: dict[str, str],
                                                                 args: tuple[str, ...], words: str) -> None:
    result = invoke(app, "inspection", "run", *args)
    assert result.exit_code != 0 and words in result.output
    with app.app_context():
        assert db.session.scalar(select(InspectionRun.id)) is None


# --- the demo farm and --now ----------------------------------------------------------------------------------------

@pytest.fixture
def demo(app: Flask, websites: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The province's websites served by the demo farm (one of each behaviour), the app pointed at it through
    the static-hosts file, as the README's demo steps do."""
    monkeypatch.setattr(demo_inspection, "CYCLE", SHORT_CYCLE)
    hosts = tmp_path / "demo-hosts.json"
    with app.app_context():
        planned = demo_inspection.plan("120000", 50)
    with demo_inspection.farm_of(planned) as farm:
        demo_inspection.write_hosts(hosts, demo_inspection.static_hosts(planned, farm))
        app.config.update(INSPECTION_STATIC_HOSTS_FILE=str(hosts), INSPECTION_ALLOWED_NETWORKS="127.0.0.1/32",
                          INSPECTION_CONNECT_TIMEOUT=1, INSPECTION_TOTAL_TIMEOUT=3)
        yield planned, farm, hosts


def test_the_plan_gives_each_website_its_behaviour_and_certificate(app: Flask, demo: Any) -> None:
    planned, farm, hosts = demo
    assert [site.behaviour for site in planned] == list(SHORT_CYCLE)
    with app.app_context():
        current = dict(db.session.execute(select(Website.id, Certificate.token).join(
            Certificate, Certificate.entity_id == Website.entity_id).where(
            Certificate.status == CertificateStatus.CURRENT)).all())
    by = {site.behaviour: site for site in planned}
    assert by["compliant"].token == current[by["compliant"].website_id]
    assert by["no_cert"].token == "" and by["old_cert"].token not in ("", current[by["old_cert"].website_id])
    written = json.loads(hosts.read_text(encoding="utf-8"))
    assert set(written) == {domain for site in planned for domain in site.domains}
    assert by["compliant"].addresses == ("10.12.0.1",)
    assert written[by["compliant"].domains[0]] == [f"10.12.0.1=>127.0.0.1:{farm.port}"]
    assert written[by["dead"].domains[0]][0].startswith("10.12.0.1=>127.0.0.1:") and str(farm.port) not in \
        written[by["dead"].domains[0]][0]
    assert written[by["outside"].domains[0]] == f"127.0.0.1:{farm.port}"


def test_the_farm_serves_the_number_linked_and_the_certificate(demo: Any) -> None:
    planned, farm, _hosts = demo
    by = {site.behaviour: site for site in planned}

    def get(site: demo_inspection.PlannedWebsite, path: str = "/") -> requests.Response:
        return requests.get(f"http://127.0.0.1:{farm.port}{path}", headers={"Host": site.domains[0]}, timeout=5)

    page = get(by["compliant"]).text
    assert f'<a href="https://beian.miit.gov.cn/" target="_blank">{by["compliant"].number}</a>' in page
    assert by["unlinked"].number in get(by["unlinked"]).text and "beian.miit.gov.cn" not in get(by["unlinked"]).text
    assert by["missing"].number not in get(by["missing"]).text
    assert get(by["compliant"], "/cert/bazs.cert").text == by["compliant"].token
    assert get(by["no_cert"], "/cert/bazs.cert").status_code == 404
    assert get(by["error"]).status_code == 500


def test_run_now_inspects_the_demo_websites_and_reports_the_failing_checks(app: Flask, people: dict[str, str],
                                                                            demo: Any) -> None:
    """Every website checked over real HTTP; the compliant one passes every check (the filed address its names are
    said to have inside its filed range, its certificate current); each other one fails the check its behaviour
    breaks — the "outside" one the access check, its names resolving to plain 127.0.0.1."""
    planned, _farm, _hosts = demo
    result = invoke(app, "inspection", "run", "--as", people["bureau"], "--now")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[1].startswith("run ") and "websites checked" in lines[1]
    summary = json.loads(lines[-1])
    assert summary["state"] == "done" and summary["checked"] == len(planned) and summary["failing"] == 7
    with app.app_context():
        failing = {row.website_id: set(filter(None, row.failing.split(","))) for row in db.session.scalars(
            select(InspectionResult).where(InspectionResult.run_id == summary["run"]))}
    by = {site.behaviour: failing[site.website_id] for site in planned}
    assert by["compliant"] == set()
    assert by["missing"] == {"number"} and by["unlinked"] == {"link"}  # no number: no link to look for
    assert by["no_cert"] == {"cert"} and by["old_cert"] == {"cert"}
    assert by["dead"] == {"alive", "cert"} and by["error"] == {"alive"}  # a dead site serves no certificate either
    assert by["outside"] == {"access"}
    assert summary["failing_by_check"] == {"dns": 0, "alive": 2, "number": 1, "link": 1, "cert": 3, "access": 1}


def test_demo_sites_command_writes_the_hosts_file_and_stops(app: Flask, websites: list[int],
                                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo_inspection, "CYCLE", SHORT_CYCLE)
    hosts = tmp_path / "hosts.json"
    result = invoke(app, "inspection", "demo-sites", "--province", "12", "--limit", "5", "--hosts-file", str(hosts),
                    "--serve-seconds", "0")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.splitlines()[0])
    assert answer["websites"] == 5 and answer["behaviours"] == {"compliant": 1, "missing": 1, "unlinked": 1,
                                                                "no_cert": 1, "old_cert": 1}
    assert len(json.loads(hosts.read_text(encoding="utf-8"))) == answer["names"] == 10  # www. and bare each
    empty = invoke(app, "inspection", "demo-sites", "--province", "11", "--hosts-file", str(hosts),
                   "--serve-seconds", "0")
    assert empty.exit_code != 0 and "no website in force" in empty.output
