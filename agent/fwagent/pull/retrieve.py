"""Retrieve one series into the shared spool with C-MOVE or C-GET, then check the count.

C-MOVE: the peer sends the images to our own Storage SCP (AE ``pull.ae_title`` on
``pull.port``, the PUSH side's receiver started with ``source="pull"``). C-GET: the images
come back on our association and are stored by the same receiver's C-STORE handler. Either
way each instance lands once in the spool (a duplicate SOP instance replaces its copy), so
a retry after a broken retrieval never duplicates anything.

While it is retrieved, the series is held back from the uploader (a partial set is never
uploaded); one whose earlier copy is being uploaded is retrieved at the next poll instead.
Only when this retrieval delivered at least the count the peer announced is the series
marked ``complete`` for the uploader; otherwise the retrieval failed, with the reason.
"""

from __future__ import annotations

import logging
import time

from fwmapping.dimse import Association, StoragePresentationContexts, build_role
from fwmapping.dimse import StudyRootQueryRetrieveInformationModelGet as GET
from fwmapping.dimse import StudyRootQueryRetrieveInformationModelMove as MOVE
from pydicom.dataset import Dataset

from fwagent.pull import net
from fwagent.pull.options import PullOptions
from fwagent.receiver import StorageSCP
from fwagent.state import State

log = logging.getLogger(__name__)

PENDING = (0xFF00, 0xFF01)
WARNING = (0xB000,)


class Retriever:
    """Moves or gets series from the peer; ``store`` is the receiver whose C-STORE
    handler C-GET reuses (for C-MOVE the running SCP on pull.port does the storing)."""

    def __init__(self, options: PullOptions, state: State, store: StorageSCP) -> None:
        self.options = options
        self.state = state
        self.store = store
        timeout = options.retrieve_timeout_seconds
        self.move_ae = net.new_ae(options.pull, timeout=timeout)
        self.move_ae.add_requested_context(MOVE)
        self.get_ae = net.new_ae(options.pull, timeout=timeout)
        self.get_ae.add_requested_context(GET)
        # 1 + 120 storage contexts stays under the 128 a requestor may propose
        self._roles = []
        for context in StoragePresentationContexts:
            self.get_ae.add_requested_context(str(context.abstract_syntax))
            self._roles.append(build_role(str(context.abstract_syntax), scp_role=True))

    def retrieve(self, study_uid: str, series_uid: str, expected: int) -> int:
        """Fetch the series; return how many of its images this retrieval delivered
        (>= expected; more if the series grew before the peer listed it).

        Raises net.PullError with a one-line reason when the peer fails or short-delivers,
        net.RetrieveLater when an upload of the series is in flight.
        """
        if not self.state.hold(series_uid):
            raise net.RetrieveLater("an earlier copy is being uploaded: retrieving next poll")
        started = time.time()
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = series_uid
        if self.options.pull.method == "c-get":
            with net.associate(
                self.get_ae,
                self.options.pull,
                handlers=[self.store.store_handler()],
                ext_neg=self._roles,
            ) as assoc:
                final = self._run(assoc, assoc.send_c_get(query, GET), "C-GET")
        else:
            with net.associate(self.move_ae, self.options.pull) as assoc:
                responses = assoc.send_c_move(query, self.options.pull.ae_title, MOVE)
                final = self._run(assoc, responses, "C-MOVE")
        # what this retrieval delivered (a duplicate SOP instance replaces its row), not
        # what an upload in between may already have taken from the spool
        received = sum(1 for i in self.state.instances(series_uid) if i.received_at >= started)
        failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
        if received < expected:
            detail = f", peer reports {failed} failed sub-operations" if failed else ""
            raise net.PullError(f"received {received} of {expected} images{detail}")
        if not self.state.mark_complete(series_uid):
            row = self.state.series(series_uid)
            log.info("series %s retrieved; pipeline state is %s", series_uid, row and row.state)
        return received

    def _run(self, assoc: Association, responses: object, what: str) -> Dataset:
        """Drain the responses; return the final status dataset or raise PullError."""
        peer = net.describe_peer(self.options.pull)
        final: Dataset | None = None
        for status, _identifier in responses:  # type: ignore[attr-defined]
            if status is None or "Status" not in status:
                raise net.PullError(f"{what} from {peer}: connection lost or timed out")
            code = int(status.Status)
            if code in PENDING:
                continue
            final = status
            if code == 0x0000 or code in WARNING:
                break
            if code == 0xA801:
                raise net.PullError(
                    f"{what} from {peer}: move destination {self.options.pull.ae_title!r}"
                    " unknown to the peer (list it there with our host and pull.port)"
                )
            raise net.PullError(f"{what} from {peer} failed with status 0x{code:04X}")
        if final is None:
            raise net.PullError(f"{what} from {peer}: no final response")
        return final
