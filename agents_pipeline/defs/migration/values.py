"""Per-value coercion of legacy SQLite values into what a PostgreSQL column accepts.

SQLite types each value, not each column, so every converter takes whatever storage class it
is handed (integer, real, text, blob, NULL) and returns a value of one Python type, or raises
``Reject`` with a reason naming the column. The row then goes to the rejects table with its
original values; nothing is guessed silently and nothing is dropped.
"""

from __future__ import annotations

import ast
import json
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from agents_pipeline.core.validation import MAX_VALUE

# Times outside this window are not history but damage (epoch 0, 2106 = 2**32 seconds).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_AVAILABLE = frozenset({"", "n/a", "na", "nan%", "none", "null", "-", "--", "?"})
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_BAD_JSON_CHARS = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The largest value read from a legacy file, in bytes (UTF-8 text or blob): 1 MiB, the live
# API's largest limit (a key-value value; a conversation's prompt or response is capped at as
# many characters). A file holding a larger value (SQLite allows 1 GB) would otherwise cost that
# much memory several times over, or abort the read with "string or blob too big".
MAX_VALUE_BYTES = MAX_VALUE


class Reject(Exception):
    """A value that cannot be converted; the message is the reason stored with the row."""


class Oversize:
    """Stands in for a value larger than MAX_VALUE_BYTES, which stayed in the file."""

    __slots__ = ("kind", "size")

    def __init__(self, kind: str, size: int) -> None:
        self.kind, self.size = kind, size


def parse_oversize(note: str) -> dict[int, Oversize]:
    """The note of ``LegacySource.select_capped`` ('<index>:<type>:<bytes> ...') by column index."""
    found = {}
    for item in note.split():
        index, kind, size = item.split(":")
        found[int(index)] = Oversize(kind, int(size))
    return found


def oversize_reason(columns: tuple[str, ...] | list[str], found: dict[int, Oversize]) -> str:
    """The reject reason: each oversize column with its type and size, and the limit."""
    parts = [f"{columns[i]}: {o.kind} of '{o.size:,}' bytes" for i, o in sorted(found.items())]
    return (f"{'; '.join(parts)}, over the limit of {MAX_VALUE_BYTES:,} bytes for one legacy value: "
            "left in the file, not read")


class BadText(bytes):
    """A TEXT value whose bytes are not valid UTF-8 (kept as bytes so it can be escaped)."""


def decode_text(raw: bytes) -> str | BadText:
    """sqlite3 text_factory: the default one raises for the whole query on one bad value."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadText(raw)


def text(value: object, col: str) -> str | None:
    if value is None or type(value) is str:
        if value is not None and "\x00" in value:
            raise Reject(f"{col}: text contains NUL characters, which PostgreSQL text cannot store")
        return value
    if isinstance(value, BadText):
        raise Reject(f"{col}: text is not valid UTF-8")
    if isinstance(value, bytes):
        try:
            return text(value.decode("utf-8"), col)
        except UnicodeDecodeError:
            raise Reject(f"{col}: binary value that is not UTF-8 text") from None
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def required_text(value: object, col: str, max_len: int | None = None) -> str:
    out = text(value, col)
    if out is None:
        raise Reject(f"{col}: missing (NULL) but required")
    if max_len is not None and len(out) > max_len:
        raise Reject(f"{col}: text of '{len(out):,}' characters is longer than the {max_len} the live API accepts")
    return out


def name(value: object, col: str) -> str | None:
    """An agent name: fleet.agents.name is 1..200 characters without control characters."""
    out = text(value, col)
    if out is None:
        return None
    if not 1 <= len(out) <= 200 or _CONTROL.search(out):
        raise Reject(f"{col}: {out[:40]!r} is not a valid agent name (1-200 characters, no control characters)")
    return out


def timestamp(value: object, col: str) -> datetime | None:
    """Every legacy form: ISO text with or without T, fraction, Z or offset (none = UTC), and
    Unix epoch seconds as an integer, a real or digits in text."""
    if value is None:
        return None
    if type(value) is str:
        raw = value.strip()
        if not raw:
            return None
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            try:
                seconds = float(raw)
            except ValueError:
                raise Reject(f"{col}: {raw[:40]!r} is not a timestamp") from None
            return timestamp(seconds, col)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        else:
            parsed = parsed.astimezone(UTC)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise Reject(f"{col}: {value!r} is not a timestamp")
        try:
            parsed = EPOCH + timedelta(seconds=value)
        except OverflowError:
            raise Reject(f"{col}: epoch {value!r} is outside any sensible range") from None
    else:
        raise Reject(f"{col}: {type(value).__name__} value is not a timestamp")
    if not EARLIEST <= parsed < LATEST:
        raise Reject(f"{col}: {parsed.isoformat()!r} is outside the sensible range "
                     f"{EARLIEST.year}-{LATEST.year - 1} (epoch 0 or a damaged value)")
    return parsed


def required_timestamp(value: object, col: str) -> datetime:
    out = timestamp(value, col)
    if out is None:
        raise Reject(f"{col}: missing (NULL or empty) but required")
    return out


def real(value: object, col: str) -> float | None:
    """8-byte float; text numbers (also '12.5%') convert, not-available markers become NULL."""
    if value is None:
        return None
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if type(value) is str:
        raw = value.strip()
        if raw.lower() in _NOT_AVAILABLE:
            return None
        try:
            return float(raw[:-1] if raw.endswith("%") else raw)
        except ValueError:
            raise Reject(f"{col}: {raw[:40]!r} is not a number") from None
    raise Reject(f"{col}: {type(value).__name__} value is not a number")


def integer(value: object, col: str, bits: int = 64) -> int | None:
    if value is None:
        return None
    if type(value) is str:
        raw = value.strip()
        if raw.lower() in _NOT_AVAILABLE:
            return None
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                raise Reject(f"{col}: {raw[:40]!r} is not an integer") from None
    if type(value) is float:
        if not value.is_integer():
            raise Reject(f"{col}: {value!r} is not an integer")
        value = int(value)
    if type(value) is not int:
        raise Reject(f"{col}: {type(value).__name__} value is not an integer")
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise Reject(f"{col}: {value} does not fit in a {bits}-bit integer")
    return value


def numeric(value: object, col: str) -> Decimal | None:
    """Exact decimal from the shortest float text, so 0.1 stays 0.1 (not 0.1000000000000000055)."""
    number = real(value, col)
    if number is None:
        return None
    if not math.isfinite(number):
        raise Reject(f"{col}: {number!r} is not a finite amount")
    number = number or 0.0    # -0.0: numeric has no negative zero, and the digest compares texts
    try:
        return Decimal(format(Decimal(repr(number)), "f"))
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        raise Reject(f"{col}: {number!r} is not a number") from None


def boolean(value: object, col: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if type(value) is str and value.strip().lower() in _TRUE:
        return True
    if type(value) is str and value.strip().lower() in _FALSE:
        return False
    raise Reject(f"{col}: {str(value)[:40]!r} is not a boolean")


def _json_safe(doc: object) -> bool:
    """jsonb refuses \\u0000 and lone surrogates that Python's json accepts."""
    if isinstance(doc, str):
        return not _BAD_JSON_CHARS.search(doc)
    if isinstance(doc, dict):
        return all(_json_safe(k) and _json_safe(v) for k, v in doc.items())
    if isinstance(doc, list):
        return all(_json_safe(v) for v in doc)
    return True


def _no_constants(token: str) -> None:
    raise ValueError(f"{token} is not JSON")


class _OutOfRange(ValueError):
    """A JSON number jsonb cannot store."""


_JSON_NUMBER = re.compile(r"-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?")


def _numeric_float(token: str) -> float:
    """jsonb stores numbers as ``numeric``: at most 131,072 digits before the point and 16,383
    after it. Python reads ``1e-20000`` as 0.0 and ``1e200000`` as inf, while PostgreSQL's COPY
    fails on them, which would stop the whole batch on every run: such a document is rejected."""
    match = _JSON_NUMBER.fullmatch(token)
    if match is not None:
        whole, fraction, exponent = match.groups()
        shift = int(exponent or 0)
        if len(fraction or "") - shift > 16_383 or len(whole.lstrip("0")) + shift > 131_072:
            raise _OutOfRange(f"{token[:40]} is outside what jsonb can store")
    return float(token)


def _load_json(raw: str) -> object:
    return json.loads(raw, parse_constant=_no_constants, parse_float=_numeric_float)


def json_document(value: object, col: str) -> str | None:
    """JSON text for a jsonb column. Valid JSON passes unchanged; a Python repr (single quotes,
    True/None) is converted through ast.literal_eval; empty text is NULL; anything else rejects."""
    raw = text(value, col)
    if raw is None or not raw.strip():
        return None
    try:
        doc = _load_json(raw)
    except _OutOfRange as exc:
        raise Reject(f"{col}: JSON number {exc}") from None
    except (ValueError, RecursionError):
        return _from_python_repr(raw, col)
    if "\\u" in raw and not _json_safe(doc):
        raise Reject(f"{col}: JSON holds \\u0000 or a lone surrogate, which jsonb cannot store")
    return raw


def _from_python_repr(raw: str, col: str) -> str:
    reason = f"{col}: invalid JSON ({raw[:40]!r}{'...' if len(raw) > 40 else ''})"
    if len(raw) > 1_000_000 or raw.lstrip()[:1] not in ("{", "["):
        raise Reject(reason)
    try:
        doc = ast.literal_eval(raw)
        out = json.dumps(doc, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise Reject(reason) from None
    if not _json_safe(doc) or not isinstance(doc, dict | list):
        raise Reject(reason)
    return out


def json_object(value: object, col: str) -> str:
    """A jsonb column that is NOT NULL DEFAULT '{}': empty becomes {}."""
    return json_document(value, col) or "{}"


def json_or_string(value: object, col: str) -> str | None:
    """Key-value and config values: JSON when the text is JSON, else the plain string as a
    JSON string, so the stored value is exactly the legacy text either way."""
    if value is None:
        return None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return json.dumps(value)
    raw = text(value, col)
    try:
        doc = _load_json(raw)
        if _json_safe(doc):
            return raw
    except (ValueError, RecursionError):
        pass
    if _BAD_JSON_CHARS.search(raw):
        raise Reject(f"{col}: text holds a lone surrogate")
    return json.dumps(raw, ensure_ascii=False)


def escape_original(value: object) -> tuple[str | None, str]:
    """(text, SQLite storage class) of an original value, reversible: backslashes doubled,
    NUL and invalid bytes as \\xNN, blobs as \\x + hex (PostgreSQL's bytea form)."""
    if value is None:
        return None, "null"
    if isinstance(value, Oversize):      # the reason gives its size; the value stayed in the file
        return None, value.kind
    if isinstance(value, BadText):
        raw = bytes(value).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
        return raw.replace("\x00", "\\x00"), "text"
    if isinstance(value, bytes):
        return "\\x" + value.hex(), "blob"
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\x00", "\\x00"), "text"
    if isinstance(value, float):
        return repr(value), "real"
    return str(value), "integer"
