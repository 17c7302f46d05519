"""Which Flywheel API errors are worth retrying: the one rule for the agent's uploads and
the gears' downloads.

Retried: no HTTP answer at all (connection refused or reset, timeouts), 408 Request
Timeout, 409 Conflict (a concurrent change to the same container, e.g. two uploads
creating one session: the next attempt finds it made), 429 Too Many Requests, and every
5xx. Permanent: every other 4xx (bad key, no permission, not found, invalid body):
repeating the same request gets the same answer.
"""

from __future__ import annotations

RETRYABLE_4XX = frozenset({408, 409, 429})


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a flywheel-sdk ``ApiException`` (or any error with ``status``),
    None when there was no HTTP answer."""
    status = getattr(exc, "status", None)
    return int(status) if isinstance(status, int) else None


def is_permanent(exc: BaseException) -> bool:
    """A 4xx other than timeout, conflict or rate limit: retrying will not help."""
    status = http_status(exc)
    return status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX


def is_retryable(exc: BaseException) -> bool:
    return not is_permanent(exc)


def describe(exc: BaseException) -> str:
    """One line for a log or a report: ``HTTP 503: reason`` or ``ErrorType: message``."""
    status = http_status(exc)
    reason = getattr(exc, "reason", None) or getattr(exc, "detail", None) or str(exc)
    text = " ".join(str(reason).split())[:300]
    return f"HTTP {status}: {text}" if status else f"{type(exc).__name__}: {text}"
