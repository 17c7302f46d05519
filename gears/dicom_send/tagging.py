"""Tag a copy of each file with dicom-send's private tag; the input is never modified."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from fwmapping import NotDicomError, SentTag, add_sent_tag, read_header
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

DEFER = 1024 * 1024  # values above this stay on disk until written: no file held in memory


class NotSendable(ValueError):
    """DICOM that cannot be sent (no SOP class/instance UID); counted and reported."""


@dataclass(frozen=True)
class TaggedFile:
    """A tagged copy ready to send from disk, with what association negotiation needs."""

    path: Path
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    source_name: str


def is_dicom(path: Path) -> bool:
    """The shared rule (fwmapping) for what counts as DICOM; DICOMDIRs are not images."""
    try:
        header = read_header(path)
    except NotDicomError:
        return False
    meta = getattr(header, "file_meta", None)
    sop_class = (meta.get("MediaStorageSOPClassUID") if meta else None) or header.get("SOPClassUID")
    return sop_class != MediaStorageDirectoryStorage


def tag_copy(source: Path, dest: Path, tag: SentTag, source_name: str = "") -> TaggedFile:
    """Write ``source`` + the private tag to ``dest`` (data elements otherwise unchanged)."""
    ds = pydicom.dcmread(source, force=True, defer_size=DEFER)
    sop_class = ds.get("SOPClassUID")
    sop_instance = ds.get("SOPInstanceUID")
    if not sop_class or not sop_instance:
        raise NotSendable(f"{source_name or source.name}: no SOP Class/Instance UID")
    meta = ds.get("file_meta") or FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        if little is False:
            meta.TransferSyntaxUID = ExplicitVRBigEndian
        else:
            meta.TransferSyntaxUID = (
                ImplicitVRLittleEndian if implicit is not False else ExplicitVRLittleEndian
            )
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    if "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    add_sent_tag(ds, tag)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return TaggedFile(
        path=dest,
        sop_class=str(sop_class),
        sop_instance=str(sop_instance),
        transfer_syntax=str(meta.TransferSyntaxUID),
        source_name=source_name or source.name,
    )


def convert(tagged: TaggedFile, syntax: str, dest: Path) -> TaggedFile:
    """A copy in an uncompressed ``syntax`` for a peer that refused the file's own syntax.

    Raises ValueError (with the reason) when the pixel data cannot be decompressed here.
    """
    ds = pydicom.dcmread(tagged.path)
    source_syntax = ds.file_meta.TransferSyntaxUID
    if source_syntax.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False)  # the same image, not a new one
        except Exception as exc:  # pydicom raises by plugin; one clear reason is enough
            raise ValueError(
                f"peer refused {source_syntax.name} and it cannot be decompressed here: {exc}"
            ) from None
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.save_as(dest, enforce_file_format=True)
    return TaggedFile(dest, tagged.sop_class, tagged.sop_instance, syntax, tagged.source_name)
