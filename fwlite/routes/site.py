"""Who and what the site is: version, config, auth status, the current user."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

VERSION = "23.0.0"

router = APIRouter(prefix="/api")


@router.get("/version")
async def version() -> dict[str, Any]:
    return {"release": VERSION, "flywheel_release": VERSION, "database": 100}


@router.get("/config")
async def config() -> dict[str, Any]:
    return {
        "signed_url": False,
        "features": {"signed_url": False, "multipart_signed_url": False},
        "site": {"id": "fwlite", "name": "fwlite", "api_url": "/api"},
    }


@router.get("/auth/status")
async def auth_status() -> dict[str, Any]:
    return {
        "origin": {"type": "user", "id": "admin@fwlite.local"},
        "user_id": "admin@fwlite.local",
        "user_is_admin": True,
        "is_device": False,
    }


@router.get("/users/self")
async def current_user() -> dict[str, Any]:
    return {
        "_id": "admin@fwlite.local",
        "email": "admin@fwlite.local",
        "firstname": "Site",
        "lastname": "Admin",
        "roles": ["site_admin"],
    }
