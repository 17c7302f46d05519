"""dicom-send's private tag, read and written as fw-gear-dicom-send 4.2.0 does (DESIGN.md s5).

That gear takes (or creates) the creator's private block in the group with pydicom's
``private_block(group, identifier, create=True)`` and writes the value as LO at the first
free offset starting at 0x00; its code's default value is "DICOM Send", its manifest's
"DICOM send". A fresh block is therefore creator (0021,0010) and value (0021,1000).
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pydicom
import pytest
from fwmapping import SentTag, add_sent_tag, is_sent_by_flywheel, read_header
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from tests.support.dicomgen import SeriesSpec, make_instance

TAG = SentTag()  # group 0x0021, creator Flywheel, value "DICOM send"


def flywheel_tagged(value: str = "DICOM Send", offset: int = 0x00, slot: int = 0x10) -> Dataset:
    """A dataset tagged the way fw-gear-dicom-send 4.2.0 tags a fresh file."""
    ds = make_instance(SeriesSpec(), 0)
    ds.add_new((0x0021, slot), "LO", "Flywheel")
    ds.add_new((0x0021, (slot << 8) | offset), "LO", value)
    return ds


def test_fw_gear_dicom_send_tag_is_detected_in_memory_and_on_disk(tmp_path: Path) -> None:
    ds = flywheel_tagged()
    assert is_sent_by_flywheel(ds, TAG)
    explicit = tmp_path / "explicit.dcm"
    ds.save_as(explicit, enforce_file_format=True)
    assert is_sent_by_flywheel(read_header(explicit), TAG)
    # implicit VR: the value comes back as raw bytes (VR UN) with a trailing pad
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = tmp_path / "implicit.dcm"
    ds.save_as(implicit, enforce_file_format=True)
    header = read_header(implicit)
    assert header[0x00211000].VR == "UN"
    assert is_sent_by_flywheel(header, TAG)


@pytest.mark.parametrize(
    "value", ["DICOM Send", "DICOM send", "dicom send", " DICOM SEND ", "DICOM send\x00"]
)
def test_value_matches_case_insensitively_with_padding_stripped(value: str) -> None:
    assert is_sent_by_flywheel(flywheel_tagged(value), TAG)


@pytest.mark.parametrize("offset", [0x00, 0x01, 0x7F, 0xFF])
def test_any_offset_of_the_block_matches(offset: int) -> None:
    assert is_sent_by_flywheel(flywheel_tagged(offset=offset), TAG)
    assert is_sent_by_flywheel(flywheel_tagged(offset=offset, slot=0x42), TAG)


def test_what_is_not_the_tag() -> None:
    assert not is_sent_by_flywheel(make_instance(SeriesSpec(), 0), TAG)
    assert not is_sent_by_flywheel(flywheel_tagged("DICOM sent"), TAG)
    assert not is_sent_by_flywheel(flywheel_tagged(), SentTag(group=0x0023))
    assert not is_sent_by_flywheel(flywheel_tagged(), SentTag(creator="Other"))
    other_creator = make_instance(SeriesSpec(), 0)
    other_creator.add_new((0x0021, 0x0010), "LO", "SIEMENS MR HEADER")
    other_creator.add_new((0x0021, 0x1000), "LO", "DICOM Send")
    assert not is_sent_by_flywheel(other_creator, TAG)
    multi = flywheel_tagged()
    multi[0x00211000].value = ["DICOM Send", "x"]
    assert not is_sent_by_flywheel(multi, TAG)


def test_a_custom_tag_from_the_gear_config_is_detected() -> None:
    tag = SentTag(group=0x0033, creator="Site PACS", value="exported")
    ds = make_instance(SeriesSpec(), 0)
    ds.add_new((0x0033, 0x0010), "LO", "Site PACS")
    ds.add_new((0x0033, 0x1000), "LO", "EXPORTED ")
    assert is_sent_by_flywheel(ds, tag)
    assert not is_sent_by_flywheel(ds, TAG)


def test_written_at_the_first_free_offset_of_a_fresh_block() -> None:
    ds = make_instance(SeriesSpec(), 0)
    before = {element.tag: element.value for element in ds}
    add_sent_tag(ds, TAG)
    add_sent_tag(ds, TAG)  # once only
    added = {element.tag: element.value for element in ds if element.tag not in before}
    assert added == {0x00210010: "Flywheel", 0x00211000: "DICOM send"}
    assert ds[0x00211000].VR == "LO"
    assert all(ds[tag].value == value for tag, value in before.items())


def test_written_next_to_what_the_block_already_holds() -> None:
    # the creator's block exists with offset 0x00 used: the value goes to 0x01
    ds = make_instance(SeriesSpec(), 0)
    ds.add_new((0x0021, 0x0010), "LO", "Flywheel")
    ds.add_new((0x0021, 0x1000), "LO", "something else")
    add_sent_tag(ds, TAG)
    assert ds[0x00211000].value == "something else"
    assert ds[0x00211001].value == "DICOM send"
    # another vendor holds slot 0x10: our block is the next free creator slot, 0x11
    vendor = make_instance(SeriesSpec(), 0)
    vendor.add_new((0x0021, 0x0010), "LO", "SIEMENS MR HEADER")
    vendor.add_new((0x0021, 0x1000), "CS", "KEEP")
    add_sent_tag(vendor, TAG)
    assert vendor[0x00210011].value == "Flywheel"
    assert vendor[0x00211100].value == "DICOM send"
    assert vendor[0x00211000].value == "KEEP"


def test_already_tagged_by_fw_gear_dicom_send_is_not_tagged_again() -> None:
    ds = flywheel_tagged("DICOM Send")
    count = len(ds)
    add_sent_tag(ds, TAG)
    assert len(ds) == count


def test_our_own_output_is_detected_after_a_round_trip(tmp_path: Path) -> None:
    ds = make_instance(SeriesSpec(), 0)
    add_sent_tag(ds, TAG)
    path = tmp_path / "ours.dcm"
    ds.save_as(path, enforce_file_format=True)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert is_sent_by_flywheel(header, TAG)
    assert is_sent_by_flywheel(header, SentTag(value="DICOM Send"))


def test_tagging_leaves_no_reference_cycle() -> None:
    """A tagged dataset is freed as soon as it is dropped, not at the next full garbage
    collection: dicom-send tags every file of a session, and each dataset holds its pixels."""
    ds = Dataset()
    ds.PatientID = "x"
    add_sent_tag(ds, SentTag())
    assert is_sent_by_flywheel(ds, SentTag())
    gone = weakref.ref(ds)
    gc.disable()
    try:
        del ds
        assert gone() is None
    finally:
        gc.enable()
