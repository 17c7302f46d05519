"""fwmapping.dimse.settings: each process-wide pynetdicom switch set by its named function."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fwmapping import dimse
from pynetdicom import _config


@pytest.fixture
def restored() -> Iterator[None]:
    saved = {k: getattr(_config, k) for k in dir(_config) if k.isupper()}
    yield
    for key, value in saved.items():
        setattr(_config, key, value)


def test_receive_chunked_sets_pynetdicoms_switch(restored: None) -> None:
    _config.STORE_RECV_CHUNKED_DATASET = False
    dimse.receive_chunked()
    assert _config.STORE_RECV_CHUNKED_DATASET is True


def test_chunked_send_only_while_the_block_runs(restored: None) -> None:
    _config.STORE_SEND_CHUNKED_DATASET = False
    with dimse.chunked_send():
        assert _config.STORE_SEND_CHUNKED_DATASET is True
    assert _config.STORE_SEND_CHUNKED_DATASET is False


def test_unrestricted_storage_still_refuses_worklist(restored: None) -> None:
    """pydicom's worklist keyword is registered as a C-FIND service, not taken for storage."""
    from pydicom.uid import UID
    from pynetdicom import sop_class
    from pynetdicom.service_class import BasicWorklistManagementServiceClass
    from pynetdicom.sop_class import uid_to_service_class  # type: ignore[attr-defined]

    _config.UNRESTRICTED_STORAGE_SERVICE = False
    dimse.allow_unrestricted_storage()
    assert _config.UNRESTRICTED_STORAGE_SERVICE is True
    worklist = UID("1.2.840.10008.5.1.4.31")
    assert hasattr(sop_class, worklist.keyword)
    assert uid_to_service_class(worklist) is BasicWorklistManagementServiceClass
