"""PS3.4 matching as the Q/R index applies it: each rule against a real SQLite table."""

from __future__ import annotations

import sqlite3

import pytest
from fwagent.qr.matching import IdentifierError, condition, normalize, shadow_value

ROWS = [
    # PatientName, StudyDescription, StudyDate, StudyTime, StudyInstanceUID, SeriesNumber, Mods
    ("Doe^John", "Brain MRI", "20201023", "105624", "1.2.3", "2", "MR"),
    ("DOE^JANE", "Knee 50%", "20210315", "0830", "1.2.4", "10", "CT\\MR"),
    ("Smith^Anna", "Chest [PA]", "20191201", "153000.25", "1.2.5", None, "CR"),
    ("O_Neil^X", None, None, None, "1.2.6", "3", None),
]
COLUMNS = (
    "PatientName",
    "StudyDescription",
    "StudyDate",
    "StudyTime",
    "StudyInstanceUID",
    "SeriesNumber",
    "ModalitiesInStudy",
)
VRS = {"PatientName": "PN", "StudyDescription": "LO", "StudyDate": "DA", "StudyTime": "TM"}


@pytest.fixture(scope="module")
def db() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    con.execute(f'CREATE TABLE t ({cols}, "_n_StudyDate", "_n_StudyTime")')
    for row in ROWS:
        shadows = (shadow_value("DA", row[2]), shadow_value("TM", row[3]))
        con.execute(f"INSERT INTO t VALUES ({','.join('?' * 9)})", (*row, *shadows))
    return con


def match(db: sqlite3.Connection, column: str, vr: str, value: str) -> list[str]:
    found = condition(column, vr, value)
    where, params = found if found is not None else ("1", [])
    rows = db.execute(f'SELECT "StudyInstanceUID" FROM t WHERE {where}', params)
    return sorted(r[0] for r in rows)


ALL = ["1.2.3", "1.2.4", "1.2.5", "1.2.6"]


@pytest.mark.parametrize(
    ("column", "vr", "value", "expected"),
    [
        # universal: empty, or a lone *
        ("PatientName", "PN", "", ALL),
        ("StudyDate", "DA", "*", ALL),
        # single value; PN is case-insensitive, LO is not
        ("PatientName", "PN", "doe^john", ["1.2.3"]),
        ("StudyDescription", "LO", "brain mri", []),
        ("StudyDescription", "LO", "Brain MRI", ["1.2.3"]),
        # wildcards on PN (LIKE, with % and _ literal) and LO (GLOB, with [] literal)
        ("PatientName", "PN", "DOE*", ["1.2.3", "1.2.4"]),
        ("PatientName", "PN", "?oe^J*", ["1.2.3", "1.2.4"]),
        ("PatientName", "PN", "O_*", ["1.2.6"]),
        ("StudyDescription", "LO", "*50%", ["1.2.4"]),
        ("StudyDescription", "LO", "Chest [PA]", ["1.2.5"]),
        ("StudyDescription", "LO", "Chest [*", ["1.2.5"]),
        # UI: list of UIDs; a * in a UID is literal (wildcards are not allowed on UI)
        ("StudyInstanceUID", "UI", "1.2.3\\1.2.5", ["1.2.3", "1.2.5"]),
        ("StudyInstanceUID", "UI", "1.2.*", []),
        # DA ranges and single dates (ACR-NEMA dotted form too)
        ("StudyDate", "DA", "20200101-20211231", ["1.2.3", "1.2.4"]),
        ("StudyDate", "DA", "-20200101", ["1.2.5"]),
        ("StudyDate", "DA", "20210315-", ["1.2.4"]),
        ("StudyDate", "DA", "2021.03.15", ["1.2.4"]),
        # TM: precision-aware ranges and single values
        ("StudyTime", "TM", "08-11", ["1.2.3", "1.2.4"]),
        ("StudyTime", "TM", "1530", ["1.2.5"]),
        ("StudyTime", "TM", "1056-", ["1.2.3", "1.2.5"]),
        # integers compare as numbers
        ("SeriesNumber", "IS", "10", ["1.2.4"]),
        # multi-valued ModalitiesInStudy: any requested modality present
        ("ModalitiesInStudy", "CS", "MR", ["1.2.3", "1.2.4"]),
        ("ModalitiesInStudy", "CS", "CR\\CT", ["1.2.4", "1.2.5"]),
    ],
)
def test_matching(
    db: sqlite3.Connection, column: str, vr: str, value: str, expected: list[str]
) -> None:
    assert match(db, column, vr, value) == expected


@pytest.mark.parametrize(
    ("column", "vr", "value"),
    [
        ("StudyDate", "DA", "2020-13"),
        ("StudyDate", "DA", "-"),
        ("StudyDate", "DA", "yesterday"),
        ("StudyTime", "TM", "25:99:99x"),
        ("StudyDescription", "LO", "a\\b"),
        ("SeriesNumber", "IS", "two"),
    ],
)
def test_unusable_values_are_identifier_errors(column: str, vr: str, value: str) -> None:
    with pytest.raises(IdentifierError, match=column):
        condition(column, vr, value)


def test_normalize_orders_in_time_and_pads_upper_bounds() -> None:
    assert normalize("TM", "10") == "100000.000000"
    assert normalize("TM", "10", upper=True) == "105959.999999"
    assert normalize("TM", "10:30:15.5", upper=True) == "103015.599999"
    assert normalize("DT", "2020", upper=True) == "20201231235959.999999"
    assert normalize("DT", "20200102030405+0100") == "20200102030405.000000"
    assert shadow_value("DA", "garbage") is None
