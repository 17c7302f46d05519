"""The running agent: push Storage SCP + pipeline sweeper (+ pull, + Q/R, + metrics listener
with the status page)."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import IO, Any

from . import chunked, durable, metrics
from .config import AgentConfig
from .db import redact
from .deid.service import Deidentifier
from .pipeline import Pipeline
from .receiver import StorageSCP
from .spool import Spool, lock_spool, recover_spool
from .state import State

log = logging.getLogger("fwagent")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def deid_service(config: AgentConfig) -> Deidentifier | None:
    """The de-identification service when ``deid.profile`` is set (not started)."""
    if not config.deid.profile:
        return None
    return Deidentifier(config.deid.profile, Path(config.spool_dir), config.state_path)


class Agent:
    def __init__(self, config: AgentConfig, client_factory: Any = None) -> None:
        self.config = config
        self.spool = Spool(Path(config.spool_dir))
        self.state: State = config.open_state()
        self.deid = deid_service(config)
        self.pipeline = Pipeline(config, self.state, self.spool, client_factory, deid=self.deid)
        self.push: StorageSCP | None = None
        self.pull: Any = None
        self.web: Any = None
        self.qr: Any = None
        self._spool_lock: IO[str] | None = None

    def start(self) -> None:
        if not self.state.shared:
            self._spool_lock = lock_spool(self.spool)
        if self.state.shared:
            log.info(
                "state shared in %s as replica %s (upload lease %gs)",
                redact(self.config.state_url), self.state.owner, self.state.lease_seconds,
            )  # fmt: skip
        on_stored = None
        if self.deid is not None:
            self.deid.start()  # a bad profile stops here (ProfileError)
            self.deid.recover(self.state.instances())
            on_stored = self.deid.on_stored  # de-identify as instances arrive
        # received datasets stream to a file (spool/tmp when `fwagent run` made that this
        # process's temporary folder), and the spool's own folders are durable before
        # anything is acknowledged in them
        chunked.enable()
        durable.make_dirs_durable(self.spool.root, self.spool.instances, self.spool.tmp)
        found = recover_spool(self.spool, self.state)
        if any(found.values()):
            log.info(
                "recovered spool: %(partial)d partial files and %(work)d work folders removed, "
                "%(orphans)d "
                "unacknowledged files removed, %(requeued)d series re-queued",
                found,
            )
        config = self.config
        peers = [config.pull.peer.ae_title] if config.pull.enabled else []
        metrics.scanner.configure([*config.push.allowed_calling_aets, *peers])
        if config.metrics.enabled:
            from .web import StatusServer

            self.web = StatusServer(config, self.state).start()
            if not config.metrics.basic_auth.user and not _loopback(config.metrics.host):
                log.warning(
                    "status page and metrics on %s are open to the network without a login"
                    " (set metrics.basic_auth, or put them behind a proxy)",
                    config.metrics.host,
                )
            log.info(
                "status page on http://%s:%d/ (metrics at /metrics, status.json)%s",
                config.metrics.host, self.web.port,
                " with basic auth" if config.metrics.basic_auth.user else "",
            )  # fmt: skip
        if config.push.enabled:
            self.push = StorageSCP(
                self.spool,
                self.state,
                min_free_bytes=int(config.spool_min_free_mb * 1024 * 1024),
                sent_tag=config.mapping_config().sent_tag,
                source="push",
                on_stored=on_stored,
            )
            self.push.start(
                config.push.ae_title,
                config.push.host,
                config.push.port,
                tls=config.push.tls,
                allowed_calling_aets=config.push.allowed_calling_aets,
                allowed_hosts=config.push.allowed_hosts,
                max_associations_per_host=config.push.max_associations_per_host,
            )
        if config.pull.enabled:
            from . import pull

            self.pull = pull.start(config, self.state, self.pipeline, on_stored=on_stored)
        if config.qr.enabled:
            from . import qr

            self.qr = qr.start(config)
        self.pipeline.start()

    def stop(self) -> None:
        if self.push is not None:
            self.push.stop()
            self.push = None
        if self.pull is not None:
            self.pull.stop()
            self.pull = None
        if self.qr is not None:
            self.qr.stop()
            self.qr = None
        self.pipeline.stop()
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.deid is not None:
            self.deid.stop()
        self.state.close()
        if self._spool_lock is not None:
            self._spool_lock.close()
            self._spool_lock = None
