"""De-id pieces that need no worker: UID repair, the site rules, the mapping split, and
the bookkeeping of de-identified copies."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom
import pytest
from fwagent.deid.mapping import map_deidentified
from fwagent.deid.profile import ProfileError, check_profile, profile_problems, read_profile
from fwagent.deid.store import Copy, DeidStore
from fwagent.deid.uids import fix_uids, valid_uid
from fwagent.state import State
from fwmapping import MappingConfig
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.valuerep import validate_value

from tests.support.dicomgen import SeriesSpec, make_instance
from tests.support.phi import PROFILE


@pytest.mark.parametrize(
    ("uid", "valid"),
    [
        ("1.2.826.0.186208.221505.000012", "1.2.826.0.186208.221505.12"),
        ("1.2.0.000", "1.2.0.0"),
        ("1.2.3", "1.2.3"),
        ("1.02.003.4", "1.2.3.4"),
    ],
)
def test_valid_uid_drops_leading_zeros(uid: str, valid: str) -> None:
    assert valid_uid(uid) == valid
    validate_value("UI", valid, pydicom.config.RAISE)
    assert valid_uid(valid) == valid  # deterministic and stable


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_fix_uids_reaches_sequences_multi_values_and_file_meta() -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.826.0.1.000045"
    ds.SeriesInstanceUID = "1.2.3"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.0099"
    ds.ReferencedImageSequence = [item]
    ds.RelatedGeneralSOPClassUID = ["1.2.03", "1.2.4"]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.000045"
    assert fix_uids(ds) == 4
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.45"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.99"
    assert list(ds.RelatedGeneralSOPClassUID) == ["1.2.3", "1.2.4"]
    assert fix_uids(ds) == 0


def test_the_site_profile_passes_the_rules() -> None:
    assert check_profile(PROFILE).config["name"] == "site-offsite"


@pytest.mark.parametrize(
    ("profile", "problem"),
    [
        ({"name": "x"}, "no dicom section with fields"),
        ({"dicom": {"fields": []}}, "no dicom section with fields"),
        (
            {"dicom": {"fields": [{"name": "PatientID", "hash": True}]}},
            "dicom field PatientID uses hash without a salt",
        ),
        (
            {"dicom": {"fields": [{"name": "StudyInstanceUID", "hashuid": True}]}},
            "dicom field StudyInstanceUID uses hashuid without a salt",
        ),
        (
            {"dicom": {"salt": "s", "fields": [{"name": "StudyDate", "jitter-date": True}]}},
            "dicom field StudyDate uses jitter-date",
        ),
        (
            {"dicom": {"fields": [{"name": "SOPInstanceUID", "remove": True}]}},
            "dicom field SOPInstanceUID is removed",
        ),
    ],
)
def test_the_rules_refuse_with_a_reason(profile: dict[str, object], problem: str) -> None:
    problems = profile_problems(profile)
    assert problems and problems[0].startswith(problem)


def test_a_salted_profile_with_a_fixed_date_shift_is_fine() -> None:
    profile = {
        "dicom": {
            "salt": "s",
            "date-increment": -3,
            "fields": [
                {"name": "PatientID", "hash": True},
                {"name": "StudyDate", "increment-date": True},
                {"name": "SeriesInstanceUID", "hashuid": True},
            ],
        }
    }
    assert profile_problems(profile) == []


def test_unreadable_profiles_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        read_profile(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dicom:\n  fields: [\n")
    with pytest.raises(ProfileError, match=r"not valid YAML .* at line"):
        read_profile(bad)
    other = tmp_path / "profile.txt"
    other.write_text("dicom: {}")
    with pytest.raises(ProfileError, match=r"\.yaml, \.yml or \.json"):
        read_profile(other)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ProfileError, match="must be a mapping"):
        read_profile(listed)


def test_map_deidentified_places_by_the_original_and_names_by_the_copy() -> None:
    spec = SeriesSpec(patient_id="fw://psych/study01/s01", patient_name="Quixley^Marguerite")
    original = make_instance(spec, 0)
    copy = make_instance(spec, 0)
    copy.PatientID = "ANON"  # the routing field, replaced by the profile
    copy.PatientName = "ANONYMOUS"
    copy.StudyInstanceUID = "1.2.826.0.11"
    copy.SeriesInstanceUID = "1.2.826.0.22"
    copy.StudyDescription = "Research study"
    metadata = map_deidentified(original, copy, MappingConfig())
    assert metadata["group"] == {"_id": "psych"}
    assert metadata["project"] == {"label": "study01"}
    assert metadata["routing"]["value"] == "fw://psych/study01/s01"
    assert metadata["session"]["subject"] == {
        "label": "s01",
        "firstname": "",
        "lastname": "ANONYMOUS",
    }
    assert metadata["session"]["uid"] == "1.2.826.0.11"
    assert metadata["session"]["label"] == "Research study"  # not named by the routing
    assert metadata["acquisition"]["uid"] == "1.2.826.0.22"
    named = make_instance(SeriesSpec(patient_id="fw://psych/study01/s01/baseline"), 0)
    assert map_deidentified(named, copy, MappingConfig())["session"]["label"] == "baseline"


def _copy_file(store: DeidStore, sop: str, received_at: float, body: bytes) -> Copy:
    folder = store.dest_dir("1.2.3", sop, received_at)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"new-{sop}.dcm"
    path.write_bytes(body)
    return Copy(sop, "1.2.3", received_at, str(path), len(body))


def test_store_keeps_the_newest_version_and_frees_what_was_uploaded(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    store = DeidStore(tmp_path / "state.sqlite", tmp_path)
    now = time.time()
    state.record_instance("9.1", "1.2.3", "1.2", tmp_path / "a.dcm", 1, now=now)
    old = _copy_file(store, "9.1", now - 5, b"old")
    new = _copy_file(store, "9.1", now, b"new!")
    store.record(new)
    store.record(old)  # finished late: an older version never replaces a newer one
    assert store.current("9.1", now) == new
    assert not Path(old.path).exists()
    assert store.current("9.1", now - 5) is None
    Path(new.path).write_bytes(b"torn")  # same size: still whole
    assert store.current("9.1", now) == new
    Path(new.path).write_bytes(b"to")  # torn by a crash: not current
    assert store.current("9.1", now) is None
    Path(new.path).write_bytes(b"new!")
    assert store.forget([("9.1", now - 5)]) == 0  # a stale version frees nothing
    assert store.forget([("9.1", now)]) == 1
    assert not Path(new.path).exists() and store.get("9.1") is None
    assert list((tmp_path / "deid").iterdir()) == []


def test_store_recover_drops_copies_no_spooled_instance_needs(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    store = DeidStore(tmp_path / "state.sqlite", tmp_path)
    now = time.time()
    state.record_instance("9.1", "1.2.3", "1.2", tmp_path / "a.dcm", 1, now=now)
    kept = _copy_file(store, "9.1", now, b"kept")
    store.record(kept)
    gone = _copy_file(store, "9.2", now, b"gone")  # its instance was uploaded meanwhile
    store.record(gone)
    stray = _copy_file(store, "9.3", now, b"stray")  # written, never recorded (kill)
    assert store.recover({(r.sop_uid, r.received_at) for r in state.instances()}) == 2
    assert Path(kept.path).exists()
    assert not Path(gone.path).exists() and not Path(stray.path).exists()
    assert store.get("9.2") is None
