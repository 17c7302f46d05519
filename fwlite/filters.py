"""Flywheel's finder filter syntax: ``label=x,parents.project=ID,created>2020-01-01``.

Supported operators: ``=``, ``!=``, ``=~`` (regex search), ``=|`` (in list ``[a,b]``),
``<``, ``<=``, ``>``, ``>=``. Keys are dotted paths into the rendered document
(``info.fwagent.routing.placement``, ``subject.label``); ``id`` means ``_id``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fwlite.store import StoreError

OPERATORS = ("!=", "=~", "=|", "<=", ">=", "=", "<", ">")
Condition = Callable[[dict[str, Any]], bool]


def split_filters(text: str) -> list[str]:
    """Split on commas that are not inside [...] lists or quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            if char == quote:
                quote = ""
            current.append(char)
            continue
        if char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def lookup(doc: Any, key: str) -> Any:
    if key in ("id", "_id"):
        key = "_id"
    for part in key.split("."):
        if isinstance(doc, dict):
            doc = doc.get("_id" if part == "id" and "_id" in doc else part)
        else:
            return None
    return doc


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def coerce(actual: Any, wanted: str) -> tuple[Any, Any]:
    """Compare numbers as numbers, booleans and null as such, the rest as strings."""
    if wanted in ("null", "None") and actual is None:
        return None, None
    if isinstance(actual, bool):
        return actual, wanted.lower() in ("true", "1", "yes")
    if isinstance(actual, int | float):
        try:
            return actual, float(wanted)
        except ValueError:
            return str(actual), wanted
    if actual is None:
        return None, wanted
    return str(actual), wanted


def parse_condition(text: str) -> Condition:
    for op in OPERATORS:
        index = text.find(op)
        if index > 0:
            key, value = text[:index].strip(), unquote(text[index + len(op) :].strip())
            return make_condition(key, op, value)
    raise StoreError(400, f"invalid filter '{text}': expected key=value")


def make_condition(key: str, op: str, value: str) -> Condition:
    if op == "=~":
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise StoreError(400, f"invalid regex in filter '{key}=~{value}': {exc}") from None
        return lambda doc: _regex(lookup(doc, key), pattern)
    if op == "=|":
        options = [unquote(v.strip()) for v in value.strip("[]").split(",") if v.strip()]
        return lambda doc: any(_equal(lookup(doc, key), o) for o in options)
    if op == "=":
        return lambda doc: _equal(lookup(doc, key), value)
    if op == "!=":
        return lambda doc: not _equal(lookup(doc, key), value)
    return lambda doc: _compare(lookup(doc, key), op, value)


def _regex(actual: Any, pattern: re.Pattern[str]) -> bool:
    if isinstance(actual, list):
        return any(pattern.search(str(a)) for a in actual)
    return actual is not None and pattern.search(str(actual)) is not None


def _equal(actual: Any, wanted: str) -> bool:
    if isinstance(actual, list):  # tags=x matches a tag in the list, as in Core
        return any(_equal(a, wanted) for a in actual)
    left, right = coerce(actual, wanted)
    return bool(left == right)


def _compare(actual: Any, op: str, wanted: str) -> bool:
    left, right = coerce(actual, wanted)
    if left is None or right is None:
        return False
    try:
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def compile_filter(text: str | None) -> Condition:
    conditions = [parse_condition(p) for p in split_filters(text or "")]
    return lambda doc: all(c(doc) for c in conditions)
