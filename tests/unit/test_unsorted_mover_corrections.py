"""The corrections CSV: accepted shapes and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fwmapping import Routing, parse_target

from gears.unsorted_mover.corrections import CorrectionsError, parse_corrections, read_corrections


def test_target_forms() -> None:
    assert parse_target("psych/study01") == Routing("psych", "study01")
    assert parse_target(" fw://Psych/study01/s01/ses1 ") == Routing(
        "psych", "study01", "s01", "ses1"
    )
    assert parse_target("psych/study01/s01/") == Routing("psych", "study01", "s01")
    assert parse_target("psych/study01/s01").path() == "psych/study01/s01"


@pytest.mark.parametrize("bad", ["psych", "/study01", "a/b/c/d/e", "a//c", "fw://"])
def test_bad_targets(bad: str) -> None:
    with pytest.raises(ValueError, match="target"):
        parse_target(bad)


def test_rows_by_id_and_uid() -> None:
    text = "session_id,study_instance_uid,target\nabc,,psych/study01\n,1.2.3,psych/study02/s9\n"
    rows = parse_corrections(text)
    assert [(r.row, r.session_id, r.study_uid, r.target.path()) for r in rows] == [
        (2, "abc", None, "psych/study01"),
        (3, None, "1.2.3", "psych/study02/s9"),
    ]


def test_report_columns_fed_back() -> None:
    """A dry-run report with a filled-in To column works; untouched rows are ignored."""
    text = (
        "Session ID,Session Label,Subject Label,From,To,Reason,Status\n"
        "s1,My Study,ex1,unknown/Unsorted/ex1/My Study,psych/study01/s01,x,Skipped\n"
        "s2,My Study,ex2,unknown/Unsorted/ex2/My Study,,x,Skipped\n"
    )
    rows = parse_corrections(text)
    assert len(rows) == 1
    assert rows[0].session_id == "s1"
    assert rows[0].target == Routing("psych", "study01", "s01")


def test_missing_columns_is_one_clear_error() -> None:
    with pytest.raises(CorrectionsError, match="needs a 'target' column.*found: id, where"):
        parse_corrections("id,where\na,b\n")


def test_bad_rows_are_listed_by_number() -> None:
    text = "session_id,study_instance_uid,target\n,,psych/x\nabc,,psych\nok,,psych/p\n"
    with pytest.raises(CorrectionsError) as info:
        parse_corrections(text)
    assert "row 2: no session_id or study_instance_uid" in str(info.value)
    assert "row 3: target 'psych' must be group/project" in str(info.value)


def test_read_file_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffSession_ID,Target\nabc,psych/study01\n".encode())
    assert read_corrections(path)[0].target == Routing("psych", "study01")
    with pytest.raises(CorrectionsError, match="cannot read"):
        read_corrections(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CorrectionsError, match="empty"):
        read_corrections(tmp_path / "empty.csv")
