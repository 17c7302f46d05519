"""fwmapping.dimse: the one place the agent and the dicom-send gear use pynetdicom.

Nothing else imports pynetdicom (tests/unit/test_dimse_surface.py checks), so what we rely
on of it, public or not, is visible here and checked against the installed version here.
``fwmapping`` itself does not import this package: importers that do not speak DIMSE need
no pynetdicom (the agent and gears extras both carry it).

What it adds to pynetdicom:

- :func:`on_open_nodelay` / :func:`nodelay`: TCP_NODELAY on every association's socket;
- :func:`on_open_fast`: TCP_NODELAY plus shorter idle sleeps for that association only
  (:mod:`fwmapping.dimse.reactor`: scoped, version-checked, measured);
- :class:`Server`, :func:`serve`, :func:`stop`: a listening SCP with our own server class
  (connection gate), owned by the caller rather than slipped into the AE's server list;
- :class:`FindAnswerCounter`: the workaround for pynetdicom 3's lost C-FIND responses;
- :func:`keep_responses`, :func:`parkable` (:class:`Checkpoint`), :func:`set_network_nap`,
  :func:`tls_info`: dicom-send's requestor workarounds (:mod:`fwmapping.dimse.requestor`);
- process-wide settings, one named function each (:mod:`fwmapping.dimse.settings`):
  :func:`allow_unrestricted_storage`, :func:`name_known_services`, :func:`receive_chunked`,
  :func:`chunked_send`,
  :func:`quiet_library_log`, :func:`filter_service_log`; and :func:`storage_sop_classes`.

The rest are pynetdicom's own public names, re-exported for the callers.
"""

from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    QueryRetrievePresentationContexts,
    StoragePresentationContexts,
    build_context,
    build_role,
    evt,
)
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from .find import FindAnswerCounter
from .net import Server, nodelay, on_open_fast, on_open_nodelay, serve, stop
from .requestor import Checkpoint, keep_responses, parkable, set_network_nap, tls_info
from .settings import (
    allow_unrestricted_storage,
    chunked_send,
    filter_service_log,
    name_known_services,
    quiet_library_log,
    receive_chunked,
    storage_sop_classes,
)

Event = evt.Event

__all__ = [
    "AE",
    "ALL_TRANSFER_SYNTAXES",
    "C_STORE",
    "Checkpoint",
    "Association",
    "Event",
    "FindAnswerCounter",
    "PatientRootQueryRetrieveInformationModelFind",
    "PatientRootQueryRetrieveInformationModelGet",
    "PatientRootQueryRetrieveInformationModelMove",
    "PresentationContext",
    "QueryRetrievePresentationContexts",
    "Server",
    "StoragePresentationContexts",
    "StudyRootQueryRetrieveInformationModelFind",
    "StudyRootQueryRetrieveInformationModelGet",
    "StudyRootQueryRetrieveInformationModelMove",
    "ThreadedAssociationServer",
    "Verification",
    "allow_unrestricted_storage",
    "build_context",
    "build_role",
    "chunked_send",
    "evt",
    "filter_service_log",
    "keep_responses",
    "name_known_services",
    "nodelay",
    "on_open_fast",
    "on_open_nodelay",
    "parkable",
    "quiet_library_log",
    "receive_chunked",
    "serve",
    "set_network_nap",
    "stop",
    "storage_sop_classes",
    "tls_info",
]
