"""Checks applied before anything is sent to the database, so bad input fails with a clear
message and stores nothing: NUL characters (PostgreSQL text cannot hold them), text that is
not valid UTF-8, oversized values, non-JSON documents."""

from __future__ import annotations

import json
from typing import Any

from agents_pipeline.core.errors import ValidationError

MAX_NAME = 200
MAX_MESSAGE = 8192
MAX_PAYLOAD = 64 * 1024
MAX_VALUE = 1024 * 1024
MAX_TEXT = 1024 * 1024


def text(value: Any, field: str, *, max_len: int = MAX_TEXT, required: bool = False) -> str | None:
    """A str that PostgreSQL can store: decoded, NUL-free, valid UTF-8, within max_len."""
    if value is None:
        if required:
            raise ValidationError(f"{field} is required")
        return None
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"{field} is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text, got {type(value).__name__}")
    if "\x00" in value:
        raise ValidationError(f"{field} contains a NUL character, which PostgreSQL text cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{field} is not valid UTF-8 (character {exc.start})") from None
    if len(value) > max_len:
        raise ValidationError(f"{field} is longer than {max_len} characters ({len(value)})")
    if required and not value.strip():
        raise ValidationError(f"{field} is empty")
    return value


def name(value: Any, field: str = "agent name") -> str:
    checked = text(value, field, max_len=MAX_NAME, required=True)
    assert checked is not None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in checked):
        raise ValidationError(f"{field} {checked!r} contains control characters")
    return checked


def document(value: Any, field: str, *, max_bytes: int = MAX_PAYLOAD) -> str | None:
    """JSON text for a jsonb column, or None."""
    if value is None:
        return None
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field} is not JSON-serialisable: {exc}") from None
    text(encoded, field, max_len=max_bytes * 4)
    if "\\u0000" in encoded:
        raise ValidationError(f"{field} contains a NUL character, which PostgreSQL jsonb cannot store")
    size = len(encoded.encode("utf-8"))
    if size > max_bytes:
        raise ValidationError(f"{field} is {size} bytes, larger than the {max_bytes} byte limit")
    return encoded
