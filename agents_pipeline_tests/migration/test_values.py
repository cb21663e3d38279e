"""Per-value coercion: every legacy form converts to one value, or rejects with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agents_pipeline.defs.migration import values as V
from agents_pipeline.defs.migration.digest import row_digest
from agents_pipeline.defs.migration.values import BadText, Reject


@pytest.mark.parametrize("raw, expected", [
    ("2025-01-20T10:00:00.123456", datetime(2025, 1, 20, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2025-01-20 10:00:00", datetime(2025, 1, 20, 10, tzinfo=UTC)),
    ("2025-01-20T10:00:00Z", datetime(2025, 1, 20, 10, tzinfo=UTC)),
    ("2025-01-20T12:00:00+02:00", datetime(2025, 1, 20, 10, tzinfo=UTC)),
    ("2025-01-20T06:30:00-03:30", datetime(2025, 1, 20, 10, tzinfo=UTC)),
    (1737367200, datetime(2025, 1, 20, 10, tzinfo=UTC)),
    (1737367200.5, datetime(2025, 1, 20, 10, 0, 0, 500000, tzinfo=UTC)),
    ("1737367200", datetime(2025, 1, 20, 10, tzinfo=UTC)),
    (" 2025-01-20 10:00:00 ", datetime(2025, 1, 20, 10, tzinfo=UTC)),
])
def test_timestamps_in_every_legacy_form_become_utc(raw, expected):
    assert V.timestamp(raw, "ts") == expected


@pytest.mark.parametrize("raw, word", [
    (0, "sensible range"), ("1970-01-01 00:00:00", "sensible range"), (4294967295, "sensible range"),
    ("2106-02-07T06:28:15", "sensible range"), ("yesterday", "not a timestamp"), (float("nan"), "not a timestamp"),
    (1e20, "sensible range"), (b"\x01", "not a timestamp"), ("2025-02-30 10:00:00", "not a timestamp"),
])
def test_impossible_times_reject_with_a_reason(raw, word):
    with pytest.raises(Reject, match=word):
        V.timestamp(raw, "ts")


def test_reals_integers_and_booleans_follow_per_value_typing():
    assert V.real("12.5%", "v") == 12.5 and V.real("N/A", "v") is None and V.real(3, "v") == 3.0
    with pytest.raises(Reject, match="not a number"):
        V.real("lots", "v")
    assert V.integer("12", "n") == 12 and V.integer(12.0, "n") == 12 and V.integer("7.0", "n") == 7
    with pytest.raises(Reject, match="32-bit"):
        V.integer(2**31, "n", 32)
    with pytest.raises(Reject, match="not an integer"):
        V.integer("true", "n")
    assert [V.boolean(v, "b") for v in (0, 1, "0", "1", "true", "FALSE", 1.0)] == [False, True, False, True, True,
                                                                                    False, True]
    with pytest.raises(Reject, match="not a boolean"):
        V.boolean(2, "b")
    assert V.numeric(0.1, "c") == Decimal("0.1") and V.numeric(1e-05, "c") == Decimal("0.00001")


def test_json_valid_passes_unchanged_repr_converts_broken_rejects():
    assert V.json_document('{"a": [1, 2.50]}', "j") == '{"a": [1, 2.50]}'
    assert json.loads(V.json_document("{'a': True, 'b': None}", "j")) == {"a": True, "b": None}
    assert V.json_document("", "j") is None and V.json_object("  ", "j") == "{}"
    for broken in ('{"a": 1', "NaN", '{"a": NaN}', "{'a': set()}", '"\\u0000"', '["\\ud800"]'):
        with pytest.raises(Reject):
            V.json_document(broken, "j")
    assert V.json_or_string("plain words", "v") == '"plain words"'
    assert V.json_or_string('{"k": 1}', "v") == '{"k": 1}' and V.json_or_string(5, "v") == "5"


def test_text_rejects_nul_and_invalid_utf8_and_originals_escape_reversibly():
    with pytest.raises(Reject, match="NUL"):
        V.text("a\x00b", "t")
    with pytest.raises(Reject, match="UTF-8"):
        V.text(BadText(b"\xff"), "t")
    assert V.text(b"ok", "t") == "ok" and V.text(7, "t") == "7"
    assert V.escape_original(BadText(b"a\\\xff\x00")) == ("a\\\\\\xff\\x00", "text")
    assert V.escape_original(b"\x00\x01") == ("\\x0001", "blob")
    assert V.escape_original(1.5) == ("1.5", "real") and V.escape_original(None) == (None, "null")


def test_digest_depends_on_every_value():
    base = row_digest(("int", "ts", "float", "text"), (1, datetime(2025, 1, 1, tzinfo=UTC), 0.1, "x"))
    assert base != row_digest(("int", "ts", "float", "text"), (1, datetime(2025, 1, 1, tzinfo=UTC), 0.1, "y"))
    assert base != row_digest(("int", "ts", "float", "text"), (1, datetime(2025, 1, 1, tzinfo=UTC), 0.1000001, "x"))
    assert 0 <= base < 2**60


def test_user_table_types_never_lose_a_digit():
    """Regression: a 2**60 integer beside reals must not be squeezed into a double."""
    from agents_pipeline.defs.migration.user_tables import _pg_type

    assert _pg_type({"integer"}, False) == ("bigint", "int")
    assert _pg_type({"integer", "real", "null"}, False) == ("double precision", "float")
    assert _pg_type({"integer", "real"}, False, big_int=True) == ("text", "text")
    assert _pg_type({"text"}, True) == ("bytea", "bytea") and _pg_type({"null"}, False) == ("text", "text")


def test_json_numbers_jsonb_cannot_store_reject_instead_of_failing_the_copy():
    """Python reads 1e-20000 as 0.0 and 1e200000 as inf; PostgreSQL's COPY into jsonb fails on
    both, which would stop the same batch on every run."""
    for raw in ('[1e-20000]', '{"a": 1e200000}', '{"a": 0.' + "0" * 16_400 + '1}'):
        with pytest.raises(Reject, match="outside what jsonb can store"):
            V.json_document(raw, "tags")
    assert V.json_document('[1e-300, 1.5e10, 0.1]', "tags") == '[1e-300, 1.5e10, 0.1]'
    assert V.json_or_string("[1e-20000]", "value") == json.dumps("[1e-20000]")   # kept as the plain text


def test_negative_zero_cost_is_zero():
    """numeric has no negative zero: the digest must render what PostgreSQL stores."""
    assert str(V.numeric(-0.0, "cost")) == "0.0" and str(V.numeric(0.0, "cost")) == "0.0"
