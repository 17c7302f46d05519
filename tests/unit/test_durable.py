"""fwagent.durable: the group committer shares one commit among the instances waiting,
hands each its own result, and fails only the row that failed (issue 16.3). On a real
state.sqlite."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from fwagent import durable
from fwagent.durable import Committer
from fwagent.state import State

from tests.support.polling import wait_until


def test_waiting_instances_share_one_commit_and_each_gets_its_result(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    committer = Committer(state)
    folder = tmp_path / "instances"
    folder.mkdir()
    entered, release = threading.Event(), threading.Event()
    results: dict[int, object] = {}

    def record(i: int) -> str | None:
        if i == 0:  # the first commit holds on until the others are all waiting
            entered.set()
            release.wait(10)
        return state.record_instance(f"1.2.{i}", "1.2", "1.1", folder / f"{i}.dcm", 10)

    def handler(i: int) -> None:
        results[i] = committer.commit(folder, lambda: record(i))

    before = durable.COUNTS.commits
    first = threading.Thread(target=handler, args=(0,))
    first.start()
    assert entered.wait(10)  # the committer is inside the first commit
    others = [threading.Thread(target=handler, args=(i,)) for i in range(1, 8)]
    for thread in others:
        thread.start()
    wait_until(lambda: len(committer._pending) == 7)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    try:
        assert results == dict.fromkeys(range(8))  # no earlier copy of any of them
        assert durable.COUNTS.commits - before == 2  # the first alone, then seven together
        assert len(state.instances("1.2")) == 8
        # committed for good: a second connection sees every row
        with sqlite3.connect(tmp_path / "state.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 8
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        committer.stop()
        state.close()


def test_a_failing_row_fails_only_its_own_store(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    committer = Committer(state)
    entered, release = threading.Event(), threading.Event()
    errors: dict[int, BaseException] = {}

    def record(i: int) -> None:
        if i == 0:
            entered.set()
            release.wait(10)
        if i == 3:
            raise ValueError("row 3 is bad")
        state.record_instance(f"1.2.{i}", "1.2", "1.1", tmp_path / f"{i}.dcm", 10)

    def handler(i: int) -> None:
        try:
            committer.commit(tmp_path, lambda: record(i))
        except ValueError as exc:
            errors[i] = exc

    threads = [threading.Thread(target=handler, args=(0,))]
    threads[0].start()
    assert entered.wait(10)
    threads += [threading.Thread(target=handler, args=(i,)) for i in range(1, 5)]
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(committer._pending) == 4)
    release.set()
    for thread in threads:
        thread.join(10)
    try:
        assert list(errors) == [3]
        assert sorted(r.sop_uid for r in state.instances("1.2")) == [
            "1.2.0", "1.2.1", "1.2.2", "1.2.4",
        ]  # fmt: skip
    finally:
        committer.stop()
        state.close()


def test_a_missing_folder_fails_its_store(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    committer = Committer(state)
    try:
        if not durable.ENABLED:
            pytest.skip("fsync switched off for a benchmark")
        with pytest.raises(FileNotFoundError):
            committer.commit(tmp_path / "gone", lambda: None)
        assert committer.commit(tmp_path, lambda: "ok") == "ok"
    finally:
        committer.stop()
        state.close()
