"""pynetdicom's process-wide settings, each changed by one named function here.

These are module-level switches of pynetdicom: they apply to every association of the
process, ours and anyone else's. Each function says who calls it and why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts, _config, register_uid, sop_class
from pynetdicom.service_class import (
    NonPatientObjectStorageServiceClass,
    QueryRetrieveServiceClass,
    StorageServiceClass,
)
from pynetdicom.sop_class import uid_to_service_class

_STORAGE = (StorageServiceClass, NonPatientObjectStorageServiceClass)
_names_lock = threading.Lock()


def allow_unrestricted_storage() -> None:
    """Accept any storage SOP class, private, retired and newer ones included, as storage
    (``_config.UNRESTRICTED_STORAGE_SERVICE``, pynetdicom's documented switch). The agent's
    Storage SCP calls it: every SCP of the agent's process is a storage SCP or the Q/R SCP,
    whose own contexts are explicit. Also registers the service names pynetdicom lacks
    (:func:`name_known_services`) so that no non-storage service slips through."""
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    name_known_services()


def name_known_services() -> None:
    """Keep refusing the services we do not provide under the unrestricted storage service.

    pynetdicom's unrestricted negotiation takes a public SOP class for storage when pydicom's
    keyword for it is not a name in :mod:`pynetdicom.sop_class`; for a few services the two
    differ (pydicom ``ModalityWorklistInformationModelFind``, pynetdicom
    ``ModalityWorklistInformationFind``), so a worklist query would be accepted. Register
    pydicom's keyword too (pynetdicom's public ``register_uid``), same service class."""
    with _names_lock:
        for name in dir(sop_class):
            uid = getattr(sop_class, name)
            if not isinstance(uid, UID) or not uid.startswith("1.2.840.10008."):
                continue
            keyword = UID(uid).keyword
            service = uid_to_service_class(uid)
            if not keyword or hasattr(sop_class, keyword) or issubclass(service, _STORAGE):
                continue
            message = ""
            if service is QueryRetrieveServiceClass:
                suffixes = (("Find", "C-FIND"), ("Move", "C-MOVE"), ("Get", "C-GET"))
                message = next((m for end, m in suffixes if keyword.endswith(end)), "")
                if not message:
                    continue
            register_uid(uid, keyword, service, message)


def storage_sop_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows, non-patient object storage included
    (hanging protocols, color palettes...). With the unrestricted storage service pynetdicom
    treats only the SOP classes it does not know (private, retired, newer) as storage; the
    ones it knows must be supported contexts to be accepted."""
    known = {str(cx.abstract_syntax) for cx in AllStoragePresentationContexts}
    for name in dir(sop_class):
        value = getattr(sop_class, name)
        if isinstance(value, UID) and issubclass(uid_to_service_class(value), _STORAGE):
            known.add(str(value))
    return sorted(known)


def receive_chunked() -> None:
    """pynetdicom's chunked receive (``_config.STORE_RECV_CHUNKED_DATASET``): each C-STORE's
    dataset is written to a temporary file as its PDUs arrive, and the handler gets
    ``event.dataset_path`` instead of ``event.request.DataSet``. For the agent's durable
    receive: it applies to every storage SCP and C-GET association of the process, so call
    it only where every C-STORE handler reads ``dataset_path``."""
    _config.STORE_RECV_CHUNKED_DATASET = True


@contextmanager
def chunked_send() -> Iterator[None]:
    """pynetdicom's chunked send (``_config.STORE_SEND_CHUNKED_DATASET``: ``send_c_store``
    of a path streams the file, never holding it whole), only while the block runs.
    dicom-send wraps its sending in it; the agent never sends C-STOREs from a path."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def quiet_library_log(level: int = logging.WARNING) -> None:
    """pynetdicom logs every association at INFO; the commands keep it to ``level``."""
    logging.getLogger("pynetdicom").setLevel(level)


def filter_service_log(log_filter: logging.Filter) -> None:
    """Add ``log_filter`` (once) to pynetdicom's service-class logger, where it logs a
    handler's deliberate refusals as errors with a traceback (the Q/R SCP filters those)."""
    service_log = logging.getLogger("pynetdicom.service_class")
    if log_filter not in service_log.filters:
        service_log.addFilter(log_filter)
