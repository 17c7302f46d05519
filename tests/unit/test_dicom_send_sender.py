"""The holdable reactor checkpoint dicom-send installs on its own pynetdicom associations
(fwmapping.dimse.requestor)."""

from __future__ import annotations

import threading

from fwmapping.dimse import Checkpoint


def test_checkpoint_held_between_stores_and_let_go_when_idle() -> None:
    checkpoint = Checkpoint()
    assert isinstance(checkpoint, threading.Event) and checkpoint.is_set()  # reactor runs
    checkpoint.hold()
    assert not checkpoint.is_set()  # the reactor parks at its next loop
    checkpoint.set()  # what send_c_store does after each response
    assert not checkpoint.is_set()  # ...is skipped while held: the reactor stays parked
    checkpoint.let_go()
    assert checkpoint.is_set()  # waiting for work / releasing: the reactor watches again
    checkpoint.clear()
    checkpoint.set()
    assert checkpoint.is_set()  # not held: a plain Event
