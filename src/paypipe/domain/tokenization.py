"""Card tokenization primitives: authenticated encryption, tokens, fingerprints, PAN masking.

Pure functions apart from the randomness source, which callers may inject. Nothing here logs,
and no error message or repr ever contains a card number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

NONCE_BYTES = 12  # 96-bit GCM nonce
DATA_KEY_BYTES = 32  # AES-256
GCM_TAG_BYTES = 16
MIN_FINGERPRINT_KEY_BYTES = 32
TOKEN_PREFIX = "tok_"  # noqa: S105 - a prefix, not a secret
FINGERPRINT_PREFIX = "fp_"
PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19
REDACTED_PAN = "[PAN]"

RandomBytes = Callable[[int], bytes]

_TOKEN_BYTES = 20  # 160 bits -> 32 base32 characters
_TOKEN_PATTERN = re.compile(rf"{TOKEN_PREFIX}[a-z2-7]{{32}}")
# A run of ASCII digits where single spaces or dashes may separate digits ("4111 1111-1111 1111"),
# or a whole RFC 4122 UUID (event and message ids), which is kept: its digit groups are not a
# dash-separated card number, and masking them would corrupt the id.
_UUID = (
    r"(?<![0-9A-Za-z-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}"
    r"-[0-9a-fA-F]{12}(?![0-9A-Za-z-])"
)
_DIGIT_RUN = re.compile(rf"(?P<uuid>{_UUID})|[0-9](?:[ -]?[0-9])*")


class TokenizationError(Exception):
    """Base class for tokenization failures. Messages never contain card data."""


class InvalidCardError(TokenizationError, ValueError):
    """The card number or expiry is malformed."""


class DecryptionError(TokenizationError):
    """Authentication failed: wrong key, wrong context, or tampered ciphertext."""


@dataclass(frozen=True)
class Sealed:
    """AES-GCM output: the per-message nonce and the ciphertext with its 16-byte tag appended."""

    nonce: bytes
    ciphertext: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        if len(self.ciphertext) < GCM_TAG_BYTES:
            raise ValueError("ciphertext is shorter than the GCM tag")


@dataclass(frozen=True)
class CardMask:
    """The parts of a PAN that may be displayed and stored: issuer BIN and last four digits."""

    bin6: str
    last4: str

    def __post_init__(self) -> None:
        if not (len(self.bin6) == 6 and self.bin6.isascii() and self.bin6.isdigit()):
            raise ValueError("bin6 must be 6 digits")
        if not (len(self.last4) == 4 and self.last4.isascii() and self.last4.isdigit()):
            raise ValueError("last4 must be 4 digits")

    def __str__(self) -> str:
        return f"{self.bin6}******{self.last4}"


def canonical_context(context: Mapping[str, str]) -> bytes:
    """Deterministic encoding of an encryption context: sorted-key compact JSON in UTF-8."""
    for key, value in context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("encryption context keys and values must be strings")
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _require_data_key(data_key: bytes) -> None:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"data key must be {DATA_KEY_BYTES} bytes")


def encrypt(
    plaintext: bytes,
    data_key: bytes,
    context: Mapping[str, str],
    *,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> Sealed:
    """AES-256-GCM with a fresh random nonce; the canonical context is the associated data."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # imported by the vaults' steps alone

    _require_data_key(data_key)
    nonce = random_bytes(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, canonical_context(context))
    return Sealed(nonce=nonce, ciphertext=ciphertext)


def decrypt(sealed: Sealed, data_key: bytes, context: Mapping[str, str]) -> bytes:
    """Inverse of `encrypt`; raises DecryptionError unless key, context and ciphertext all match."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    _require_data_key(data_key)
    try:
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, canonical_context(context))
    except InvalidTag:
        raise DecryptionError("card data failed authentication") from None


def keyed_token_bits(key: bytes, purpose: str, tenant: str, fingerprint: str) -> bytes:
    """160 bits naming one vaulted value of one tenant: HMAC-SHA256 of its identity under the vault's
    fingerprint key. The same value and tenant always get the same token, so one conditional write
    stores it (no link item, no transaction); without the key a token says nothing of the value."""
    if len(key) < MIN_FINGERPRINT_KEY_BYTES:
        raise ValueError(f"fingerprint key must be at least {MIN_FINGERPRINT_KEY_BYTES} bytes")
    message = "\x00".join((purpose, tenant, fingerprint)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()[:_TOKEN_BYTES]


def card_token(fingerprint_key: bytes, tenant: str, fingerprint: str) -> str:
    """Opaque token: "tok_" + 32 lowercase base32 characters of ``keyed_token_bits``."""
    bits = keyed_token_bits(fingerprint_key, "card-token", tenant, fingerprint)
    return TOKEN_PREFIX + base64.b32encode(bits).decode("ascii").lower()


def is_token(value: str) -> bool:
    return _TOKEN_PATTERN.fullmatch(value) is not None


def luhn_valid(digits: str) -> bool:
    """Luhn checksum over a string of ASCII digits."""
    if not digits or not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def normalize_pan(pan: str) -> str:
    """Strip spaces and dashes; require 13-19 ASCII digits passing Luhn."""
    digits = pan.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidCardError("card number must contain only digits, spaces or dashes")
    if not PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS:
        raise InvalidCardError(f"card number must have {PAN_MIN_DIGITS}-{PAN_MAX_DIGITS} digits")
    if not luhn_valid(digits):
        raise InvalidCardError("card number fails the Luhn check")
    return digits


def mask(pan: str) -> CardMask:
    digits = normalize_pan(pan)
    return CardMask(bin6=digits[:6], last4=digits[-4:])


def card_fingerprint(pan: str, fingerprint_key: bytes) -> str:
    """Keyed, stable card identifier: "fp_" + lowercase unpadded base32 of HMAC-SHA256(PAN).

    Base32 rather than hex so the value never contains long decimal runs that `redact_pan`
    would mistake for a card number.
    """
    if len(fingerprint_key) < MIN_FINGERPRINT_KEY_BYTES:
        raise ValueError(f"fingerprint key must be at least {MIN_FINGERPRINT_KEY_BYTES} bytes")
    digest = hmac.new(fingerprint_key, normalize_pan(pan).encode("ascii"), hashlib.sha256).digest()
    return FINGERPRINT_PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def _contains_pan(digits: str) -> bool:
    """True if any 13-19 digit window of `digits` passes Luhn."""
    for start in range(len(digits) - PAN_MIN_DIGITS + 1):
        for length in range(PAN_MIN_DIGITS, PAN_MAX_DIGITS + 1):
            if start + length > len(digits):
                break
            if luhn_valid(digits[start : start + length]):
                return True
    return False


def _redact_run(match: re.Match[str]) -> str:
    run = match.group()
    if match.group("uuid"):
        return run
    digits = run.replace(" ", "").replace("-", "")
    return REDACTED_PAN if _contains_pan(digits) else run


def redact_pan(text: str) -> str:
    """Replace every digit run that could hide a card number with "[PAN]".

    A run is a maximal sequence of ASCII digits in which single spaces or dashes may separate
    digits; an RFC 4122 UUID standing alone is an identifier, not a run. The whole run is
    replaced when any 13-19 digit window inside it passes Luhn, so a PAN glued to neighbouring
    digits ("4111111111111111 1227") is caught too. This errs towards over-redaction: about one
    in ten unrelated 13+ digit numbers (e.g. epoch milliseconds) is replaced as well. Text
    without such a run is returned unchanged.
    """
    return _DIGIT_RUN.sub(_redact_run, text)
