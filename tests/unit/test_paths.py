"""fwmapping.paths: names from received data stay inside their root."""

from pathlib import Path

import pytest
from fwmapping import UnsafePathError, inside, safe_component


@pytest.mark.parametrize(
    "value", ["", ".", "..", "...", "a/b", "../x", "/etc", "a\x00b", "x" * 101]
)
def test_odd_values_become_hashes(value: str) -> None:
    name = safe_component(value)
    assert name.startswith("_") and len(name) == 41
    assert "/" not in name and name not in (".", "..")
    assert safe_component(value) == name  # stable


@pytest.mark.parametrize("value", ["1.2.840.10008.5.1.4.1.1.4", "Series_002", "T1-mprage"])
def test_plain_names_are_kept(value: str) -> None:
    assert safe_component(value) == value
    assert safe_component(value, ".dcm") == value + ".dcm"


def test_trailing_nul_padding_is_dropped() -> None:
    assert safe_component("1.2.3\x00") == "1.2.3"


def test_inside_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    assert inside(root, "1.2.3") == (root / "1.2.3").resolve()
    for parts in (("..",), (".",), ("a", "..", ".."), ("/etc/passwd",), ("link", "x"), ()):
        with pytest.raises(UnsafePathError):
            inside(root, *parts)


def test_a_hashed_name_never_equals_a_plain_one() -> None:
    """A UID crafted to equal another UID's hashed name must not share its file."""
    hashed = safe_component("..")
    assert safe_component(hashed) != hashed  # hashed anew: "_" never starts a plain name
    assert safe_component("x" + hashed[1:]) == "x" + hashed[1:] != hashed
