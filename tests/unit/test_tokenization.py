from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paypipe.domain.tokenization import (
    REDACTED_PAN,
    CardMask,
    DecryptionError,
    InvalidCardError,
    Sealed,
    card_fingerprint,
    card_token,
    decrypt,
    encrypt,
    is_token,
    keyed_token_bits,
    luhn_valid,
    mask,
    normalize_pan,
    redact_pan,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CONTEXT = {"tenant": "acme", "purpose": "card-vault"}
VISA = "4111111111111111"
AMEX = "378282246310005"


def _reference_luhn(digits: str) -> bool:
    checksum = 0
    for index, char in enumerate(digits[::-1]):
        doubled = int(char) * (2 if index % 2 else 1)
        checksum += sum(int(d) for d in str(doubled))
    return checksum % 10 == 0


_RFC_UUID = re.compile(
    r"(?<![0-9A-Za-z-])[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}(?![0-9A-Za-z-])",
    re.IGNORECASE,
)


def _pan_windows(text: str) -> list[str]:
    """Every Luhn-valid 13-19 digit sequence starting anywhere, with single space/dash separators,
    outside UUIDs (identifiers, which redaction keeps)."""
    text = _RFC_UUID.sub("#", text)
    found: list[str] = []
    for start, char in enumerate(text):
        if not char.isascii() or not char.isdigit():
            continue
        digits = ""
        position = start
        while position < len(text):
            if text[position].isascii() and text[position].isdigit():
                digits += text[position]
                if 13 <= len(digits) <= 19 and _reference_luhn(digits):
                    found.append(digits)
                position += 1
            elif (
                text[position] in " -"
                and position + 1 < len(text)
                and text[position + 1].isascii()
                and text[position + 1].isdigit()
                and text[position - 1].isdigit()
            ):
                position += 1
            else:
                break
    return found


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if _reference_luhn(body + d))


valid_pans = st.builds(
    _with_check_digit,
    st.text(alphabet="0123456789", min_size=12, max_size=18),
)


def _format(pan: str, separators: list[str]) -> str:
    return "".join(
        d + s for d, s in zip(pan, itertools.chain(separators, itertools.repeat("")), strict=False)
    )


formatted_pans = valid_pans.flatmap(
    lambda pan: st.lists(
        st.sampled_from(["", "", "", " ", "-"]), min_size=len(pan) - 1, max_size=len(pan) - 1
    ).map(lambda seps: _format(pan, seps))
)


# --- encryption ---------------------------------------------------------------------------


def test_round_trip_with_same_key_and_context() -> None:
    sealed = encrypt(VISA.encode(), KEY, CONTEXT)
    assert decrypt(sealed, KEY, dict(reversed(list(CONTEXT.items())))) == VISA.encode()


def test_ciphertext_hides_plaintext_and_nonce_is_fresh() -> None:
    first = encrypt(VISA.encode(), KEY, CONTEXT)
    second = encrypt(VISA.encode(), KEY, CONTEXT)
    assert VISA.encode() not in first.ciphertext
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_injected_randomness_supplies_nonce() -> None:
    sealed = encrypt(b"x", KEY, CONTEXT, random_bytes=lambda n: b"\x07" * n)
    assert sealed.nonce == b"\x07" * 12


@pytest.mark.parametrize(
    "context",
    [
        {"tenant": "other", "purpose": "card-vault"},
        {"tenant": "acme"},
        {"tenant": "acme", "purpose": "card-vault", "extra": ""},
    ],
)
def test_wrong_context_fails(context: dict[str, str]) -> None:
    sealed = encrypt(VISA.encode(), KEY, CONTEXT)
    with pytest.raises(DecryptionError):
        decrypt(sealed, KEY, context)


def test_wrong_key_fails() -> None:
    sealed = encrypt(VISA.encode(), KEY, CONTEXT)
    with pytest.raises(DecryptionError):
        decrypt(sealed, OTHER_KEY, CONTEXT)


@pytest.mark.parametrize("field_name", ["nonce", "ciphertext"])
def test_any_flipped_bit_fails(field_name: str) -> None:
    sealed = encrypt(VISA.encode(), KEY, CONTEXT)
    original = getattr(sealed, field_name)
    for index in range(len(original)):
        tampered = bytearray(original)
        tampered[index] ^= 0x01
        forged = Sealed(**{**vars(sealed), field_name: bytes(tampered)})
        with pytest.raises(DecryptionError):
            decrypt(forged, KEY, CONTEXT)


def test_rejects_non_256_bit_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encrypt(b"x", KEY[:16], CONTEXT)


def test_context_must_be_strings() -> None:
    with pytest.raises(TypeError):
        encrypt(b"x", KEY, {"tenant": 1})  # type: ignore[dict-item]


@given(
    plaintext=st.binary(max_size=512),
    key=st.binary(min_size=32, max_size=32),
    context=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
)
def test_round_trip_property(plaintext: bytes, key: bytes, context: dict[str, str]) -> None:
    assert decrypt(encrypt(plaintext, key, context), key, context) == plaintext


@given(
    plaintext=st.binary(max_size=64),
    context=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    other=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
def test_different_context_never_decrypts(
    plaintext: bytes, context: dict[str, str], other: dict[str, str]
) -> None:
    sealed = encrypt(plaintext, KEY, context)
    if other == context:
        assert decrypt(sealed, KEY, other) == plaintext
    else:
        with pytest.raises(DecryptionError):
            decrypt(sealed, KEY, other)


def test_sealed_repr_hides_ciphertext() -> None:
    sealed = encrypt(VISA.encode(), KEY, CONTEXT)
    assert "ciphertext" not in repr(sealed)


# --- tokens, fingerprints, masks ---------------------------------------------------------


def test_tokens_are_keyed_by_card_and_tenant_and_opaque() -> None:
    fingerprints = [f"fp_{index:04d}" for index in range(500)]
    tokens = {card_token(KEY, tenant, fp) for fp in fingerprints for tenant in ("acme", "globex")}
    assert len(tokens) == 1000
    assert all(is_token(t) and len(t) == 36 for t in tokens)
    assert card_token(KEY, "acme", "fp_0001") == card_token(KEY, "acme", "fp_0001")
    assert card_token(b"\x01" * 32, "acme", "fp_0001") != card_token(KEY, "acme", "fp_0001")
    # The parts are separated: moving a character from tenant to fingerprint names another value.
    assert keyed_token_bits(KEY, "card-token", "acme", "xfp") != keyed_token_bits(
        KEY, "card-token", "acmex", "fp"
    )
    assert keyed_token_bits(KEY, "card-token", "acme", "fp") != keyed_token_bits(
        KEY, "account-token", "acme", "fp"
    )


def test_a_token_key_shorter_than_a_fingerprint_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        card_token(b"short", "acme", "fp_0001")


@pytest.mark.parametrize("value", ["tok_", "tok_" + "A" * 32, "tok_" + "1" * 32, VISA, "tok_" + "a" * 33])
def test_is_token_rejects_malformed(value: str) -> None:
    assert not is_token(value)


def test_fingerprint_is_stable_keyed_and_format_insensitive() -> None:
    fp = card_fingerprint(VISA, KEY)
    assert fp == card_fingerprint("4111 1111-1111 1111", KEY)
    assert fp != card_fingerprint(VISA, OTHER_KEY)
    assert fp != card_fingerprint(AMEX, KEY)
    assert re.fullmatch(r"fp_[a-z2-7]{52}", fp)
    assert redact_pan(fp) == fp


def test_fingerprint_rejects_short_key() -> None:
    with pytest.raises(ValueError):
        card_fingerprint(VISA, b"short")


def test_mask() -> None:
    assert mask("3782-822463-10005") == CardMask(bin6="378282", last4="0005")
    assert str(mask(VISA)) == "411111******1111"


@pytest.mark.parametrize(
    "pan",
    [
        "4111111111111112",
        "411111111111",
        "41111111111111111111",
        "4111a11111111111",
        "\uff14\uff11111111111111",
    ],
)
def test_invalid_pans_rejected_without_echo(pan: str) -> None:
    with pytest.raises(InvalidCardError) as excinfo:
        normalize_pan(pan)
    assert pan not in str(excinfo.value)
    assert "1111" not in str(excinfo.value)


def test_luhn_against_reference() -> None:
    for number in range(0, 100_000, 7):
        digits = str(number)
        assert luhn_valid(digits) == _reference_luhn(digits)
    assert not luhn_valid("")


# --- redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"card={VISA} ok", "card=[PAN] ok"),
        ("pan 4111 1111 1111 1111, exp 12/27", "pan [PAN], exp 12/27"),
        ("amex 3782-822463-10005.", "amex [PAN]."),
        (f"x{VISA}y", "x[PAN]y"),
        (f"{VISA} 1227", "[PAN]"),  # expiry glued on with a single space
        (f"{VISA}  1227", "[PAN]  1227"),
        ("order 1234567890123 shipped", "order 1234567890123 shipped"),  # not Luhn-valid
        ("amount 1000 at 2026-11-23", "amount 1000 at 2026-11-23"),
        ("no digits at all", "no digits at all"),
        # UUIDs are ids: digit groups 381861-9013-5293 would otherwise pass as a card number.
        ("event 2d381861-9013-5293-a953-0092964f833d", "event 2d381861-9013-5293-a953-0092964f833d"),
        # ...but only real UUIDs: digits shaped like one are still masked.
        ("41111111-1111-1111-1111-111111111111", "[PAN]"),
        ("x2d381861-9013-5293-a953-0092964f833d", "x2d[PAN]-a953-0092964f833d"),
    ],
)
def test_redact_examples(text: str, expected: str) -> None:
    assert redact_pan(text) == expected


@given(
    parts=st.lists(
        st.one_of(formatted_pans, st.text(max_size=20), st.text(alphabet="0123456789 -", max_size=25)),
        max_size=6,
    )
)
def test_no_pan_survives_redaction(parts: list[str]) -> None:
    redacted = redact_pan("".join(parts))
    assert _pan_windows(redacted) == []
    assert redact_pan(redacted) == redacted


@given(prefix=st.text(max_size=20), pan=formatted_pans, suffix=st.text(max_size=20))
def test_embedded_pan_digits_removed(prefix: str, pan: str, suffix: str) -> None:
    redacted = redact_pan(prefix + pan + suffix)
    assert REDACTED_PAN in redacted
    assert pan not in redacted


@given(text=st.text())
def test_text_without_pan_is_unchanged(text: str) -> None:
    if not _pan_windows(text):
        assert redact_pan(text) == text


@given(text=st.text(alphabet="0123456789 -ab", max_size=60))
def test_digit_heavy_text_unchanged_iff_no_pan(text: str) -> None:
    assert (redact_pan(text) == text) == (not _pan_windows(text))
