"""``/api/_fwlite/fault``: make matching requests fail, so tests can see retries and errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from fwlite.models import FaultSpec
from fwlite.state import FAULT_PATH, AppState

router = APIRouter()


@router.put(FAULT_PATH)
async def set_fault(state: AppState, spec: Annotated[FaultSpec | None, Body()] = None) -> Any:
    spec = spec or FaultSpec()
    state.fault = {
        "status": spec.status,
        "count": spec.count,
        "path_prefix": spec.path_prefix or "/api",
        "body_contains": spec.body_contains,
    }
    return state.fault


@router.delete(FAULT_PATH)
async def clear_fault(state: AppState) -> dict[str, Any]:
    state.fault = None
    return {"cleared": True}
