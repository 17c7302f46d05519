"""The status page a site admin opens each morning, against a running ``fwagent run``
(subprocess) that received from two scanners with dcmtk's storescu (``-aet``), one of them
with routing mistakes, uploading to fwlite through the real flywheel-sdk; the page is
loaded in Debian's headless Chromium (Selenium).

One scenario is set up once for the module (an agent, two scanners, five series, a
quarantined file, a failing upload) and read by every test.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flywheel
import pydicom
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import peers
from tests.support.agent_process import start_agent, status, stop_agent, write_config
from tests.support.browser import chromium, require_browser
from tests.support.dicomgen import SeriesSpec, write_series
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until

MRI = "MRI_3T"
ER = 'ER<CT>&"1'  # a legal AE title that is also HTML: must show literally, never as markup
PHI_NAME = "Zyxwvutson^Quokkabelle"
PHI_BIRTH = "19370419"
PHI_STRINGS = ("Zyxwvutson", "Quokkabelle", PHI_BIRTH, "1937-04-19", "04/19/1937")
HOSTILE_DESCRIPTION = 'Head <b>w/o</b> & "contrast"'


@dataclass
class Scenario:
    config: Path
    metrics_port: int
    failing_uid: str
    unknown_uid: str

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url(path), headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status_json(self) -> dict[str, Any]:
        code, body = self.get("/status.json")
        assert code == 200
        return dict(json.loads(body))


def phi_spec(**kwargs: Any) -> SeriesSpec:
    return SeriesSpec(patient_name=PHI_NAME, extra={"PatientBirthDate": PHI_BIRTH}, **kwargs)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    peers.require("storescu")
    tmp = tmp_path_factory.mktemp("status")
    fwlite = FwliteServer(tmp / "fwlite").start()
    agent = None
    try:
        fw = fwlite.client()
        fw.add_group(flywheel.Group(id="psych", label="Psychology"))
        fw.get_group("psych").add_project(label="study01")
        metrics_port = peers.free_port()
        # a failed upload is retried after an hour: the page is read while it stays failed
        flywheel_section = {"api_key": fwlite.api_key, "retry_max_interval": 0.5,
                            "failed_retry_seconds": 3600}  # fmt: skip
        config, port = write_config(
            tmp,
            fwlite,
            quiet=0.5,
            metrics={"enabled": True, "port": metrics_port},
            flywheel=flywheel_section,
        )
        mri = write_series(
            tmp / "mri1",
            phi_spec(count=3, patient_id="fw://psych/study01/s1", series_description="T1 MPRAGE"),
        )
        mri += write_series(
            tmp / "mri2",
            phi_spec(count=2, patient_id="fw://psych/study01/s2 NOFW", series_description="Loc"),
        )
        # the ER scanner's operator forgot fw:// once and named a missing project once
        unknown = phi_spec(
            count=2, patient_id="psych/study01/s3", series_description=HOSTILE_DESCRIPTION
        )
        er = write_series(tmp / "er1", unknown)
        er += write_series(
            tmp / "er2",
            phi_spec(count=1, patient_id="fw://psych/nosuchproject", series_description="Scout"),
        )
        broken = tmp / "broken.dcm"  # no SeriesInstanceUID: quarantined with its reason
        ds = pydicom.dcmread(er[0])
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        del ds.SeriesInstanceUID
        ds.save_as(broken)

        agent = start_agent(config, port, tmp / "agent.log")
        assert peers.storescu(port, mri, aet=MRI).returncode == 0
        peers.storescu(port, [*er, broken], aet=ER)  # broken is answered 0xC000
        wait_until(
            lambda: (s := status(config)["series"])["uploaded"] == 3 and s["opted_out"] == 1,
            timeout=30,
        )
        # then Flywheel refuses uploads: the next MRI series is parked as failed, with reason
        fwlite.set_fault(status=403, path_prefix="/api/upload")
        failing = phi_spec(count=1, patient_id="fw://psych/study01/s4", series_description="DWI")
        assert peers.storescu(port, write_series(tmp / "mri3", failing), aet=MRI).returncode == 0
        wait_until(lambda: status(config)["series"]["failed"] == 1, timeout=30)
        yield Scenario(config, metrics_port, failing.series_uid, unknown.series_uid)
    finally:
        if agent is not None:
            assert stop_agent(agent) == 0
        fwlite.stop()


EXPECTED = {
    MRI: {
        "received_instances": 6,
        "uploaded_series": 1,
        "failed_series": 1,
        "opted_out_series": 1,
        "unknown": 0,
        "unsorted": 0,
        "routed": 1,
    },
    ER: {
        "received_instances": 3,
        "uploaded_series": 2,
        "failed_series": 0,
        "opted_out_series": 0,
        "unknown": 1,
        "unsorted": 1,
        "routed": 0,
    },
}


def test_status_json_counts_per_scanner(scenario: Scenario) -> None:
    served = scenario.status_json()
    printed = status(scenario.config)  # `fwagent status`: the same document
    for doc in (served, printed):
        for key in ("scanners", "scanners_24h"):
            assert set(doc[key]) == {MRI, ER}
            for ae, counts in EXPECTED.items():
                got = doc[key][ae]
                assert set(got) == {*counts, "last_received"}
                assert {k: got[k] for k in counts} == counts, (key, ae)
                assert got["last_received"].startswith(served["generated_at"][:10])
    assert served["series"] == printed["series"]
    recent = served["recent_series"]
    assert len(recent) == 5
    by_uid = {s["series_uid"]: s for s in recent}
    failed = by_uid[scenario.failing_uid]
    assert failed["state"] == "failed" and failed["scanner"] == MRI
    assert failed["reason"].startswith("HTTP 403")
    mistake = by_uid[scenario.unknown_uid]
    assert mistake["scanner"] == ER and mistake["placement"] == "unknown"
    assert mistake["where"].startswith("unknown/Unsorted/")
    assert mistake["description"] == HOSTILE_DESCRIPTION and mistake["instances"] == 2
    hours = served["uploads_per_hour"]
    assert len(hours) == 24 and sum(h["uploaded"] for h in hours) == 3
    assert sum(h["received"] for h in hours) == 9
    assert served["instances_waiting"] == 1  # the failed series waits in the spool
    (quarantined,) = served["quarantine"]
    assert "SeriesInstanceUID" in quarantined["reason"]


def test_no_patient_names_or_birth_dates(scenario: Scenario) -> None:
    for path in ("/", "/status.json", "/metrics"):
        code, body = scenario.get(path)
        assert code == 200
        text = body.decode()
        for phi in PHI_STRINGS:
            assert phi not in text, (path, phi)
    assert "T1 MPRAGE" in scenario.get("/")[1].decode()  # the page does name the series


def test_metrics_carry_the_scanner(scenario: Scenario) -> None:
    code, body = scenario.get("/metrics")
    assert code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name.startswith("fwagent_")
    }

    def get(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert get("fwagent_received_instances_total", source="push", calling_ae=MRI) == 6
    assert get("fwagent_received_instances_total", source="push", calling_ae=ER) == 3
    assert get("fwagent_uploaded_series_total", placement="routed", calling_ae=MRI) == 1
    assert get("fwagent_uploaded_series_total", placement="unknown", calling_ae=ER) == 1
    assert get("fwagent_uploaded_series_total", placement="unsorted", calling_ae=ER) == 1
    assert get("fwagent_uploaded_series_total", placement="routed", calling_ae=ER) == 0
    assert get("fwagent_opted_out_series_total", calling_ae=MRI) == 1
    assert get("fwagent_failed_uploads_total", calling_ae=MRI) == 1
    assert get("fwagent_failed_uploads_total", calling_ae=ER) == 0


def test_the_page_in_a_real_browser(scenario: Scenario, tmp_path: Path) -> None:
    require_browser()
    from selenium.webdriver.common.by import By

    with chromium(tmp_path / "profile", width=1280, height=1800) as web:
        web.get(scenario.url("/"))
        assert web.title == "fwagent FWAGENT status"
        refresh = web.find_element(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')
        assert refresh.get_attribute("content") == "30"

        def cell(ae: str, column: str) -> Any:
            row = web.find_element(By.CSS_SELECTOR, f'#scanners tr[data-ae="{css(ae)}"]')
            return row.find_element(By.CSS_SELECTOR, f"td.{column}")

        rows = web.find_elements(By.CSS_SELECTOR, "#scanners tbody tr.scanner")
        assert [r.find_element(By.CSS_SELECTOR, "th.ae").text for r in rows] == [ER, MRI]
        for ae, counts in EXPECTED.items():
            for column, key in (
                ("received", "received_instances"),
                ("uploaded", "uploaded_series"),
                ("failed", "failed_series"),
                ("opted-out", "opted_out_series"),
                ("unknown", "unknown"),
                ("unsorted", "unsorted"),
            ):
                shown = cell(ae, column)
                assert shown.find_element(By.CLASS_NAME, "h24").text == str(counts[key])
                assert shown.find_element(By.CLASS_NAME, "all").text == f"{counts[key]} all"
        # routing mistakes and failures stand out
        for column in ("unknown", "unsorted"):
            assert "warn" in cell(ER, column).get_attribute("class").split()
            assert "warn" not in cell(MRI, column).get_attribute("class").split()
        assert "bad" in cell(MRI, "failed").get_attribute("class").split()
        assert cell(MRI, "success").text == "50%" and cell(ER, "success").text == "100%"
        alert = web.find_element(By.ID, "routing-alert")
        assert f"{ER}: 1 in Unknown, 1 in Unsorted" in alert.text
        assert web.find_element(By.CSS_SELECTOR, "#tile-queue .value").text == "1"
        assert web.find_element(By.CSS_SELECTOR, "#tile-failing .value").text == "1"
        assert web.find_element(By.CSS_SELECTOR, "#tile-misplaced .value").text == "2"
        assert web.find_element(By.CSS_SELECTOR, "#tile-uploaded .value").text == "3"

        # the latest series: time, scanner, where it landed, description, state, reason
        series = web.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
        assert len(series) == 5
        by_uid = {r.get_attribute("title"): r for r in series}
        failed = by_uid[scenario.failing_uid]
        assert failed.find_element(By.CSS_SELECTOR, "td.state").text == "failed"
        assert failed.find_element(By.CSS_SELECTOR, "td.reason").text.startswith("HTTP 403")
        assert failed.find_element(By.CSS_SELECTOR, "td.description").text == "DWI"
        mistake = by_uid[scenario.unknown_uid]
        assert "mistake" in mistake.get_attribute("class").split()
        assert mistake.find_element(By.CSS_SELECTOR, "td.ae").text == ER
        where = mistake.find_element(By.CSS_SELECTOR, "td.where").text
        assert where.startswith("Unknown unknown/Unsorted/")
        description = mistake.find_element(By.CSS_SELECTOR, "td.description")
        assert description.text == HOSTILE_DESCRIPTION  # shown literally, not as markup
        assert description.find_elements(By.TAG_NAME, "b") == []
        assert mistake.find_element(By.CSS_SELECTOR, "td.images").text == "2"
        states = sorted(r.find_element(By.CSS_SELECTOR, "td.state").text for r in series)
        assert states == ["failed", "opted out", "uploaded", "uploaded", "uploaded"]

        (quarantined,) = web.find_elements(By.CSS_SELECTOR, "#quarantine tbody tr")
        assert "SeriesInstanceUID" in quarantined.find_element(By.CSS_SELECTOR, ".reason").text
        bars = web.find_elements(By.CSS_SELECTOR, "#uploads-chart g.bar")
        assert len(bars) == 24
        assert sum(int(b.get_attribute("data-uploaded")) for b in bars) == 3
        assert web.find_element(By.ID, "uploads-chart").is_displayed()
        for phi in PHI_STRINGS:
            assert phi not in web.page_source
        shot = tmp_path / "status-page.png"
        assert web.get_screenshot_as_file(str(shot))
        shutil.copy(shot, "/tmp/status-page.png")

        # on a phone: nothing wider than the screen but the tables' own scroll boxes
        web.set_window_size(390, 844)
        web.get(scenario.url("/"))
        overflow = web.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        assert web.get_screenshot_as_file(str(tmp_path / "status-page-phone.png"))


def css(value: str) -> str:
    """A value inside a double-quoted CSS attribute selector."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def test_basic_auth_protects_every_path(tmp_path: Path, fwlite: FwliteServer) -> None:
    password_file = tmp_path / "metrics-password"
    password_file.write_text("s3cret:with colon\n")
    metrics_port = peers.free_port()
    config, port = write_config(
        tmp_path,
        fwlite,
        metrics={
            "enabled": True,
            "port": metrics_port,
            "basic_auth": {"user": "admin", "password_file": str(password_file)},
        },
    )
    agent = start_agent(config, port, tmp_path / "agent.log")
    try:
        page = Scenario(config, metrics_port, "", "")

        def token(user: str, password: str) -> dict[str, str]:
            raw = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}

        peers.wait_for_port(metrics_port)
        for path in ("/", "/status.json", "/metrics"):
            request = urllib.request.Request(page.url(path))
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 401
            assert refused.value.headers["WWW-Authenticate"].startswith('Basic realm="fwagent"')
            assert page.get(path, token("admin", "wrong"))[0] == 401
            assert page.get(path, token("root", "s3cret:with colon"))[0] == 401
            assert page.get(path, {"Authorization": "Basic !!notbase64"})[0] == 401
            code, body = page.get(path, token("admin", "s3cret:with colon"))
            assert code == 200 and body
        assert page.get("/nothing-here", token("admin", "s3cret:with colon"))[0] == 404
    finally:
        assert stop_agent(agent) == 0
