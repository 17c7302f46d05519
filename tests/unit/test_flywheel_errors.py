"""One classification of Flywheel API errors for the agent's uploads and dicom-send's
downloads, on the SDK's own exceptions (what dicom-send does with them against fwlite:
tests/integration/test_flywheel_retry.py)."""

from __future__ import annotations

import pytest
from flywheel.rest import ApiException
from fwmapping.flywheel_errors import describe, http_status, is_permanent, is_retryable


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    exc = ApiException(status=status, reason="try later")
    assert (is_retryable(exc), is_permanent(exc)) == (True, False)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 422])
def test_permanent_statuses(status: int) -> None:
    exc = ApiException(status=status, reason="no")
    assert (is_retryable(exc), is_permanent(exc)) == (False, True)


def test_no_http_answer_is_retried() -> None:
    for exc in (ConnectionResetError("reset by peer"), TimeoutError("read timed out")):
        assert http_status(exc) is None
        assert is_retryable(exc)


def test_describe_is_one_line() -> None:
    assert describe(ApiException(status=429, reason="Too\nMany  Requests")) == (
        "HTTP 429: Too Many Requests"
    )
    assert describe(ConnectionRefusedError("nothing\nlistens")) == (
        "ConnectionRefusedError: nothing listens"
    )
