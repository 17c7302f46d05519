"""C-FIND the peer for what it holds, lightly.

One association per poll, Study Root, hierarchical as every PACS supports it:

1. one STUDY-level C-FIND bounded by a look-back window on StudyDate (so a large PACS is
   not scanned whole), asking NumberOfStudyRelatedInstances and the policy field;
2. one SERIES-level C-FIND per study, asking NumberOfSeriesRelatedInstances and the
   policy field, skipped for a study whose instance count is unchanged since the last
   poll and whose series are all settled (so the steady state costs one C-FIND per poll);
3. an IMAGE-level C-FIND (counting answers) only for a series whose count came back empty.

Every C-FIND's pending answers are also counted as they arrive
(:class:`fwmapping.dimse.FindAnswerCounter`, for pynetdicom 3's lost-response race); a query
whose answers came up short is asked again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fwmapping.dimse import AE, Association, FindAnswerCounter
from fwmapping.dimse import StudyRootQueryRetrieveInformationModelFind as FIND
from pydicom.dataset import Dataset

from fwagent.pull import net
from fwagent.pull.decide import Seen
from fwagent.pull.options import PullOptions

PENDING = (0xFF00, 0xFF01)
ASKS = 3  # times one query is asked when answers went missing on our side

log = logging.getLogger(__name__)


@dataclass
class PollResult:
    """What one poll saw, and what it cost the peer."""

    series: list[Seen] = field(default_factory=list)
    study_counts: dict[str, int | None] = field(default_factory=dict)
    skipped_studies: list[str] = field(default_factory=list)  # unchanged, not re-queried
    find_requests: int = 0
    image_level_counts: int = 0


def date_range(lookback_days: int, today: dt.date | None = None) -> str:
    """The StudyDate range key: '' (no bound) or 'YYYYMMDD-' from ``lookback_days`` ago."""
    if lookback_days <= 0:
        return ""
    today = today or dt.date.today()
    return (today - dt.timedelta(days=lookback_days)).strftime("%Y%m%d") + "-"


class Poller:
    """Runs the C-FINDs of one poll against the configured peer."""

    def __init__(self, options: PullOptions) -> None:
        self.options = options
        self.ae: AE = net.new_ae(options.pull, timeout=options.dimse_timeout_seconds)
        self.ae.add_requested_context(FIND)
        self._wire = FindAnswerCounter()

    def poll(
        self,
        previous_study_counts: dict[str, int | None] | None = None,
        settled: Callable[[str], bool] | None = None,
        today: dt.date | None = None,
    ) -> PollResult:
        """Query the peer. ``settled(study_uid)`` says all its known series need nothing."""
        previous = previous_study_counts or {}
        result = PollResult()
        self._wire = FindAnswerCounter()
        handlers = [self._wire.handler()]
        with net.associate(self.ae, self.options.pull, handlers=handlers) as assoc:
            studies = self._find(assoc, self._study_query(today), result)
            for study in studies:
                study_uid = _text(study, "StudyInstanceUID")
                if not study_uid:
                    continue
                count = _int(study, "NumberOfStudyRelatedInstances")
                result.study_counts[study_uid] = count
                unchanged = count is not None and previous.get(study_uid) == count
                if unchanged and settled is not None and settled(study_uid):
                    result.skipped_studies.append(study_uid)
                    continue
                policy_value = _value(study, self.options.policy_field)
                for series in self._find(assoc, self._series_query(study_uid), result):
                    seen = self._seen(assoc, study, series, policy_value, result)
                    if seen is not None:
                        result.series.append(seen)
        return result

    # -- queries ---------------------------------------------------------------------------
    def _study_query(self, today: dt.date | None) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = ""
        ds.StudyDate = date_range(self.options.lookback_days, today)
        ds.NumberOfStudyRelatedInstances = ""
        _ask(ds, self.options.policy_field)
        return ds

    def _series_query(self, study_uid: str) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = ""
        ds.SeriesDescription = ""
        ds.NumberOfSeriesRelatedInstances = ""
        _ask(ds, self.options.policy_field)
        return ds

    def _seen(
        self,
        assoc: Association,
        study: Dataset,
        series: Dataset,
        study_policy_value: str | None,
        result: PollResult,
    ) -> Seen | None:
        series_uid = _text(series, "SeriesInstanceUID")
        study_uid = _text(study, "StudyInstanceUID")
        if not series_uid:
            return None
        count = _int(series, "NumberOfSeriesRelatedInstances")
        if count is None:
            count = self.count_images(assoc, study_uid, series_uid, result)
        value = _value(series, self.options.policy_field)
        if value is None:
            value = study_policy_value
        allowed = None if value is None else self.options.allows(value)
        return Seen(
            study_uid=study_uid,
            series_uid=series_uid,
            count=count,
            allowed=allowed,
            study_date=_text(study, "StudyDate"),
            description=_text(series, "SeriesDescription"),
        )

    def count_images(
        self, assoc: Association, study_uid: str, series_uid: str, result: PollResult
    ) -> int:
        """IMAGE-level fallback: count the answers (peer left the series count empty)."""
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ""
        result.image_level_counts += 1
        uids = {_text(a, "SOPInstanceUID") for a in self._find(assoc, ds, result)}
        return len(uids - {""})

    def _find(self, assoc: Association, query: Dataset, result: PollResult) -> list[Dataset]:
        """The query's answers; asked again (up to ASKS times) when fewer came out of
        pynetdicom than arrived on the wire."""
        for _ in range(ASKS):
            result.find_requests += 1
            msg_id = result.find_requests
            answers, pending = self._find_once(assoc, query, msg_id)
            arrived = self._wire.pending(msg_id)
            if pending >= arrived:
                return answers
            log.warning(
                "C-FIND %s: %d answers arrived, %d reached us; asking again",
                query.QueryRetrieveLevel, arrived, pending,
            )  # fmt: skip
        raise net.PullError(
            f"C-FIND {query.QueryRetrieveLevel} to {net.describe_peer(self.options.pull)}:"
            f" answers lost on our side {ASKS} times"
        )

    def _find_once(
        self, assoc: Association, query: Dataset, msg_id: int
    ) -> tuple[list[Dataset], int]:
        """(answers with an identifier, pending responses seen) of one C-FIND."""
        answers: list[Dataset] = []
        pending = 0
        for status, identifier in assoc.send_c_find(query, FIND, msg_id=msg_id):
            if status is None or "Status" not in status:
                raise net.PullError(
                    f"C-FIND {query.QueryRetrieveLevel} to {net.describe_peer(self.options.pull)}"
                    " timed out or the association was aborted"
                )
            code = int(status.Status)
            if code in PENDING:
                pending += 1
                if identifier is not None:
                    answers.append(identifier)
            elif code == 0x0000:
                break
            else:
                raise net.PullError(
                    f"C-FIND {query.QueryRetrieveLevel} to {net.describe_peer(self.options.pull)}"
                    f" failed with status 0x{code:04X}"
                )
        return answers, pending


def _ask(ds: Dataset, keyword: str) -> None:
    if keyword and keyword not in ds:
        setattr(ds, keyword, "")


def _value(ds: Dataset, keyword: str) -> str | None:
    """The returned value as text; None when the peer did not return the attribute."""
    if not keyword or keyword not in ds:
        return None
    value = ds[keyword].value
    if value is None:
        return ""
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return "\\".join(str(v) for v in value)
    return str(value)


def _text(ds: Dataset, keyword: str) -> str:
    return (_value(ds, keyword) or "").strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    text = _text(ds, keyword)
    try:
        return int(text) if text else None
    except ValueError:
        return None
