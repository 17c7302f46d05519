"""What several route modules share: the collection names and their container types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from fwlite.store import TYPES, StoreError

PLURAL = {f"{t}s": t for t in TYPES}
COLLECTIONS: dict[str, str | None] = {**PLURAL, "containers": None}


async def coll_type(coll: str) -> str | None:
    """The container type of ``/api/{coll}`` (None for ``containers``: any type); 404 if unknown."""
    if coll not in COLLECTIONS:
        raise StoreError(404, f"no such endpoint: /api/{coll}")
    return COLLECTIONS[coll]


CollType = Annotated[str | None, Depends(coll_type)]
