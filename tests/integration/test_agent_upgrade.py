"""Upgrades keep the spool (issue 16.6): a state.sqlite written before schema versioning
(tests/fixtures/state_v0, made by that release's own code) is migrated by ``fwagent run``
and every instance it held is uploaded; a database from a newer release is refused with
one clear line by ``fwagent run`` and ``fwagent status``."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from fwagent.state import SCHEMA_VERSION

from tests.support import agent_process
from tests.support.fwlite_server import FwliteServer
from tests.support.polling import wait_until
from tests.support.site_files import zip_members

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "state_v0" / "spool"
WRITTEN_AT = "/tmp/fwagent-state-v0/spool"  # where that release wrote it (see its README)
SERIES = "1.2.826.0.1.3680043.8.498.1"
# series uid suffix -> instances waiting in the spool (receiving, complete, failed, uploading)
WAITING = {"1": 3, "2": 2, "3": 2, "4": 2}


def copy_spool(tmp_path: Path) -> Path:
    """The fixture spool at a new place; its recorded paths moved with it."""
    spool = tmp_path / "spool"
    shutil.copytree(FIXTURE, spool)
    db = sqlite3.connect(spool / "state.sqlite")
    db.execute("UPDATE instances SET path = replace(path, ?, ?)", (WRITTEN_AT, str(spool)))
    db.execute("UPDATE quarantine SET path = replace(path, ?, ?)", (WRITTEN_AT, str(spool)))
    db.commit()
    db.close()
    return spool


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_fixture_is_an_unversioned_database() -> None:
    assert user_version(FIXTURE / "state.sqlite") == 0
    db = sqlite3.connect(FIXTURE / "state.sqlite")
    columns = {row[1] for row in db.execute("PRAGMA table_info(series)")}
    db.close()
    assert "acquisitions" not in columns  # what the migration adds


def test_old_spool_is_migrated_and_every_instance_uploaded(
    tmp_path: Path, fwlite: FwliteServer, fw: Any
) -> None:
    copy_spool(tmp_path)
    config, port = agent_process.write_config(tmp_path, fwlite, quiet=0.5)
    log = tmp_path / "agent.log"
    proc = agent_process.start_agent(config, port, log)
    try:

        def settled() -> dict[str, Any] | None:
            status = agent_process.status(config)
            series = status["series"]
            done = series["uploaded"] == 5 and series["opted_out"] == 1
            return status if done and status["instances_waiting"] == 0 else None

        status = wait_until(settled, timeout=60)
    finally:
        assert agent_process.stop_agent(proc) == 0
    assert user_version(tmp_path / "spool" / "state.sqlite") == SCHEMA_VERSION
    assert status["failures"] == []
    assert status["counters"]["dropped_sent_by_flywheel"] == 2  # kept across the upgrade
    assert [q["reason"] for q in status["quarantine"]] == ["unreadable dataset: test"]
    uploaded: dict[str, int] = {}
    for session in fw.sessions():
        for acquisition in fw.get_session_acquisitions(session.id):
            uploaded[acquisition.uid] = len(zip_members(fw, acquisition.id))
    assert uploaded == {SERIES + suffix: count for suffix, count in WAITING.items()}
    assert list((tmp_path / "spool" / "instances").rglob("*.dcm")) == []


def test_state_from_a_newer_release_is_refused_with_one_line(
    tmp_path: Path, fwlite: FwliteServer
) -> None:
    spool = copy_spool(tmp_path)
    db = sqlite3.connect(spool / "state.sqlite")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    config, _ = agent_process.write_config(tmp_path, fwlite)
    for command in ("run", "status"):
        out = agent_process.fwagent(command, "--config", str(config))
        assert out.returncode == 1, (command, out.stderr)
        (line,) = out.stderr.strip().splitlines()
        assert (
            f"has state schema version {SCHEMA_VERSION + 1}, newer than this fwagent knows" in line
        )
        assert "newer release" in line and "Traceback" not in out.stderr
    assert user_version(spool / "state.sqlite") == SCHEMA_VERSION + 1  # left untouched
