"""Request bodies and query parameters, as pydantic models (FastAPI answers 400 on a mismatch)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from fwlite.store import StoreError


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null")
    return value


BlankInt = Annotated[int | None, BeforeValidator(_blank_is_none)]
# May be left out, but not sent as null (pydantic does not validate a default).
Object = Annotated[dict[str, Any] | None, BeforeValidator(_not_null)]
Keys = Annotated[list[str] | None, BeforeValidator(_not_null)]
Items = Annotated[list[Any] | None, BeforeValidator(_not_null)]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strict=True)]


class Paging(BaseModel):
    """Finder parameters: filter, limit, after_id, or sort with page/skip (an empty value is unset)."""

    filter: str | None = None
    limit: BlankInt = None
    skip: BlankInt = None
    page: BlankInt = None
    after_id: str | None = None
    sort: str | None = None


class PathBody(BaseModel):
    """``/lookup`` and ``/resolve``: a path of names; empty parts are dropped."""

    path: list[str | int | float]

    def names(self) -> list[str]:
        return [str(p) for p in self.path if str(p) != ""]


class FaultSpec(BaseModel):
    """``PUT /api/_fwlite/fault``: fail matching requests ``count`` times (None: until cleared)."""

    status: StrictInt = 503
    count: StrictInt | None = None
    path_prefix: str | None = None
    body_contains: str = ""  # only requests whose body holds this text (e.g. a project label)


class InfoUpdate(BaseModel):
    """Core's info PATCH: ``{"set": {...}}`` | ``{"replace": {...}}`` | ``{"delete": [keys]}``."""

    model_config = ConfigDict(populate_by_name=True)

    set_: Object = Field(None, alias="set")
    replace: Object = None
    delete: Keys = None

    @model_validator(mode="after")
    def _one_change(self) -> InfoUpdate:
        if not self.model_fields_set & {"set_", "replace", "delete"}:
            raise ValueError("info update needs 'set', 'replace' or 'delete'")
        return self

    def apply(self, info: dict[str, Any]) -> dict[str, Any]:
        if self.replace is not None:
            return dict(self.replace)
        out = {**info, **(self.set_ or {})}
        for key in self.delete or []:
            out.pop(key, None)
        return out


def _tag_value(value: Any) -> Any:
    return value.get("value") if isinstance(value, dict) else value


# Core takes a tag as {"value": tag}; a bare string is accepted too.
Tag = Annotated[NonEmpty, BeforeValidator(_tag_value)]


class ContainerBody(BaseModel):
    """Fields of a container to add or update; any field, but ``info``/``tags`` typed."""

    model_config = ConfigDict(extra="allow")

    info: Object = None
    tags: Items = None

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class FileUpdate(BaseModel):
    """``PUT .../files/<name>``: the file fields a client may set."""

    type: str | None = None
    modality: str | None = None
    classification: dict[str, Any] | None = None
    tags: list[str] | None = None

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def form_json(raw: str, what: str) -> Any:
    """A JSON form field (multipart uploads carry their metadata this way)."""
    try:
        return _JSON.validate_json(raw)
    except ValidationError:
        raise StoreError(400, f"{what} is not valid JSON") from None
