"""Paths built from received data (UIDs, labels, remote file names) never leave their root.

The one helper the agent and the gears use before anything is written or removed::

    name = safe_component(series_uid)          # "1.2.3" stays, "..", "", "a/b" become hashes
    path = inside(spool.work, name)            # raises UnsafePathError if it would escape
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# a component that is plainly harmless: starts with a letter or digit, then letters, digits
# and . _ - (so never "", "." or ".."), short enough for every file system
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class UnsafePathError(ValueError):
    """A path built from received data would leave its root."""


def safe_component(value: str, suffix: str = "") -> str:
    """``value`` as one path component that cannot name a parent, a root or another folder.

    Plain names (UIDs, ordinary labels) are kept as they are, so the spool stays readable;
    anything else (empty, made of dots, path separators, NULs, over 100 characters) becomes
    ``_`` + the SHA-1 of the value: stable, so the same UID always maps to the same name, and
    never equal to a plain name (those never start with ``_``).
    ``suffix`` (e.g. ``.dcm``) is appended after the check.
    """
    text = str(value).strip().rstrip("\x00")
    if not _PLAIN.match(text):
        text = "_" + hashlib.sha1(str(value).encode("utf-8", "replace")).hexdigest()
    return text + suffix


def inside(root: Path | str, *parts: str) -> Path:
    """``root / parts...``, proven to stay inside ``root`` (after resolving ``..`` and
    symbolic links); raises :class:`UnsafePathError` otherwise. The result is never
    ``root`` itself, so removing it can never remove the root."""
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base.joinpath(*parts)))
    if target == base or base not in target.parents:
        raise UnsafePathError(f"{os.path.join(*parts) if parts else ''!r} is not inside {base}")
    return target
