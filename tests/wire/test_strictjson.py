from __future__ import annotations

import pytest

from wire.strictjson import StrictJSONError, load_path, loads


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param('{"amount": 1, "amount": 9999}', "duplicate_key", id="duplicate-key"),
        pytest.param('{"a": {"id": "x", "id": "y"}}', "duplicate_key", id="nested-duplicate"),
        pytest.param('[{"a": 1}, {"b": 1, "b": 2}]', "duplicate_key", id="duplicate-in-array"),
        pytest.param('{"amount": NaN}', "non_finite_number", id="nan"),
        pytest.param("[Infinity]", "non_finite_number", id="infinity"),
        pytest.param("[-Infinity]", "non_finite_number", id="minus-infinity"),
        pytest.param("1e400", "non_finite_number", id="float-overflow"),
        pytest.param("1" * 5000, "number_too_long", id="5000-digit-int"),
        pytest.param('"\\ud800"', "lone_surrogate", id="lone-high-surrogate"),
        pytest.param('{"\\udc00": 1}', "lone_surrogate", id="lone-surrogate-in-key"),
        pytest.param("[" * 65 + "]" * 65, "too_deep", id="65-deep"),
        pytest.param('{"a":' * 100_000 + "1" + "}" * 100_000, "too_deep", id="100k-deep"),
        pytest.param(b"\xef\xbb\xbf{}", "bom", id="utf8-bom-bytes"),
        pytest.param("\ufeff{}", "bom", id="bom-str"),
        pytest.param(b'{"a": "\xff"}', "invalid_utf8", id="invalid-utf8"),
        pytest.param('{"a":1'.encode("utf-16"), "invalid_utf8", id="utf16"),
        pytest.param('{"a": }', "syntax", id="syntax"),
        pytest.param('{"a": "\x01"}', "syntax", id="control-char"),
    ],
)
def test_refuses_what_interoperable_json_forbids(document: str | bytes, reason: str) -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads(document)
    assert caught.value.reason == reason
    assert str(caught.value)  # a message a human can act on


def test_refuses_documents_over_the_size_limit_before_parsing() -> None:
    with pytest.raises(StrictJSONError) as caught:
        loads(b"[" + b"1," * 600 + b"1]", max_bytes=1000)
    assert caught.value.reason == "too_large"


def test_a_text_is_measured_in_utf8_bytes_not_code_points() -> None:
    document = '"' + "\U0001f600" * 3 + '"'  # 5 code points, 14 bytes
    assert loads(document, max_bytes=14) == "\U0001f600" * 3
    with pytest.raises(StrictJSONError) as caught:
        loads(document, max_bytes=13)
    assert caught.value.reason == "too_large"


def test_depth_limit_is_configurable_and_exact() -> None:
    nested = loads("[" * 10 + "]" * 10, max_depth=10)
    for _ in range(9):
        nested = nested[0]
    assert nested == []
    with pytest.raises(StrictJSONError):
        loads("[" * 11 + "]" * 11, max_depth=10)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    document = '{"text": "' + "[{" * 200 + '"}'
    assert loads(document) == {"text": "[{" * 200}


@pytest.mark.parametrize(
    ("document", "value"),
    [
        (
            '{"a": 1, "b": [true, false, null], "c": -0.5}',
            {"a": 1, "b": [True, False, None], "c": -0.5},
        ),
        ('["\\ud83d\\ude00"]', ["\U0001f600"]),  # an escaped surrogate *pair* is fine
        ('"\\\\ud800"', "\\ud800"),  # an escaped backslash, not a surrogate escape
        (b'{"name": "caf\xc3\xa9"}', {"name": "café"}),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_accepts_interoperable_json(document: str | bytes, value: object) -> None:
    assert loads(document) == value


def test_load_path_names_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1, "a": 2}')
    with pytest.raises(StrictJSONError, match=r"bad\.json: duplicate member name 'a'"):
        load_path(bad)
