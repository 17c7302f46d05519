"""One PULL cycle and the thread that runs it every ``pull.interval_seconds``.

poll (C-FIND) -> decide per series -> retrieve the stable ones (C-MOVE/C-GET into the
spool, count checked) -> mark them complete for the shared uploader pipeline.

With shared state (``state_url: postgresql://``) several replicas may have pull enabled;
only the one holding the pull leader lock (:class:`fwagent.db.LeaderLock`, a PostgreSQL
advisory lock on its own connection) polls. The others keep their pull storage SCP up
(a C-MOVE may name any of them) and try for the lock every few seconds, so when the
leader dies another one polls within one interval.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from fwagent.config import AgentConfig
from fwagent.db import LeaderLock
from fwagent.pull import decide as d
from fwagent.pull.net import PullError, RetrieveLater
from fwagent.pull.options import PullOptions
from fwagent.pull.poller import Poller
from fwagent.pull.retrieve import Retriever
from fwagent.pull.store import PullStore
from fwagent.receiver import StorageSCP
from fwagent.spool import Spool
from fwagent.state import State

log = logging.getLogger(__name__)

SETTLED = (d.DONE, d.OPTED_OUT, d.ABANDONED)
PULL_LEADER_KEY = 0x66776167_70756C6C  # "fwagpull": one pull leader per state database


@dataclass
class CycleReport:
    """What one cycle did (for logs, tests and the benchmark)."""

    find_requests: int = 0
    retrieved: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # retrieved next poll, no penalty
    actions: dict[str, str] = field(default_factory=dict)
    error: str = ""


class PullService:
    """Owns the pull-side storage SCP (C-MOVE destination), poller and retriever."""

    def __init__(
        self,
        config: AgentConfig,
        state: State,
        on_complete: Callable[[str], None] | None = None,
        on_stored: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.options = PullOptions.from_config(config)
        self.state = state
        self.store = PullStore(config.state_path, config.state_url)
        self.leader = LeaderLock(config.state_url, PULL_LEADER_KEY)
        self.scp = StorageSCP(
            Spool(config.spool_dir),
            state,
            min_free_bytes=int(config.spool_min_free_mb * 1024 * 1024),
            sent_tag=config.mapping_config().sent_tag,
            source="pull",
            calling_ae=config.pull.peer.ae_title,
            on_stored=on_stored,
        )
        self.poller = Poller(self.options)
        self.retriever = Retriever(self.options, state, self.scp)
        self.on_complete = on_complete
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one cycle ---------------------------------------------------------------------
    def cycle(self, now: float | None = None) -> CycleReport:
        report = CycleReport()
        now = time.time() if now is None else now
        states = self.store.series()
        by_study: dict[str, list[d.SeriesState]] = defaultdict(list)
        for s in states.values():
            by_study[s.study_uid].append(s)
        baseline = self.options.mark_existing_done and self.store.get("baseline_done") != "1"

        def settled(study_uid: str) -> bool:
            known = by_study.get(study_uid, [])
            return bool(known) and all(s.state in SETTLED for s in known)

        try:
            result = self.poller.poll(self.store.study_counts(), settled)
        except PullError as exc:
            report.error = str(exc)
            log.error("pull: poll failed: %s", exc)
            self.store.put(at=now, error=report.error)
            return report
        report.find_requests = result.find_requests

        updated: list[d.SeriesState] = []
        for study_uid in result.skipped_studies:  # unchanged: still there
            updated += [_touch(s, now) for s in by_study.get(study_uid, [])]
        todo: list[d.SeriesState] = []
        for seen in result.series:
            new, action = d.decide(
                states.get(seen.series_uid), seen, now, self.options.rules, baseline
            )
            report.actions[seen.series_uid] = action
            updated.append(new)
            if action == d.RETRIEVE:
                todo.append(new)
        self.store.save(*updated)
        self.store.save_study_counts(result.study_counts)
        if baseline:
            self.store.put(baseline_done=1)

        for series in todo:
            if self._stop.is_set():
                break
            self._retrieve(series, report)

        gone = d.forget(list(self.store.series().values()), now, self.options.rules)
        if gone:
            self.store.forget(gone)
        self.store.put(at=now, error="", find_requests=result.find_requests)
        return report

    def _retrieve(self, series: d.SeriesState, report: CycleReport) -> None:
        expected = int(series.count or 0)
        try:
            received = self.retriever.retrieve(series.study_uid, series.series_uid, expected)
        except RetrieveLater as exc:
            report.deferred[series.series_uid] = str(exc)
            log.info("pull: series %s: %s", series.series_uid, exc)
            self.store.save(dataclasses.replace(series, reason=str(exc)))
            return
        except PullError as exc:
            report.failed[series.series_uid] = str(exc)
            log.warning("pull: series %s: %s", series.series_uid, exc)
            self.store.save(d.failed(series, str(exc), time.time(), self.options.rules))
            # re-query the study next poll even if its count looks unchanged
            self.store.forget_study_count(series.study_uid)
            return
        report.retrieved[series.series_uid] = received
        self.store.save(d.succeeded(series, received, time.time()))
        if self.on_complete is not None:
            self.on_complete(series.series_uid)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        pull = self.config.pull
        self.scp.start(pull.ae_title, self.config.push.host, pull.port)
        self._thread = threading.Thread(target=self._loop, name="pull-poller", daemon=True)
        self._thread.start()
        log.info(
            "pull: polling %s every %ss (%s)",
            f"{pull.peer.ae_title}@{pull.peer.host}:{pull.peer.port}",
            pull.interval_seconds,
            pull.method,
        )

    def _loop(self) -> None:
        interval = self.config.pull.interval_seconds
        leading = False
        while not self._stop.is_set():
            if not self.leader.acquire():
                if leading:
                    log.warning("pull: lost the pull leader lock; another replica polls")
                leading = False
                self._stop.wait(min(interval, 5.0))
                continue
            if not leading and self.leader.distributed:
                log.info("pull: this replica is the pull leader")
            leading = True
            try:
                self.cycle()
            except Exception:  # the loop must survive anything one cycle throws
                log.exception("pull: cycle failed")
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.options.retrieve_timeout_seconds)
            self._thread = None
        self.leader.release()
        self.scp.stop()
        self.store.close()


def _touch(state: d.SeriesState, now: float) -> d.SeriesState:
    return dataclasses.replace(state, last_seen=now)
