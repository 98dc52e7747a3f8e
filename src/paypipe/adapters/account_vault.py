"""Payee account vault: KMS envelope encryption of DFI account numbers, beside the card vault.

The Nacha rules require stored account numbers to be unreadable. Tokenize puts the payee's account
here; every later event, table item and log line carries only the token, the last four characters
and a keyed fingerprint. Only the ACH cut detokenizes, in memory, to write the NACHA file.

Items (in the vault table, keys ``pk``/``sk``):
- ``account#<token>`` / ``account``: tenant, routing number, last four, ciphertext, nonce,
  encrypted data key, key id, encryption context, fingerprint, created_at.
  The token is keyed by the account and tenant (``account_token``): one conditional PutItem.
- ``accountfp#<fingerprint>`` / ``tenant#<tenant>``: the token of an account vaulted under a random
  token (that token stays the account's); read, no longer written.
- ``meta#account-fingerprint-key`` / ``meta``: the fingerprint HMAC key, encrypted under KMS.

The KMS encryption context is ``{"purpose": "payee-account", "tenant": ...}`` (another purpose
than cards, so no key grant for one opens the other); the AES-GCM associated data adds the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from paypipe.adapters.dynamo import put_once
from paypipe.adapters.vault import (
    DataKey,
    DataKeyCache,
    KeyProvider,
    UnknownTokenError,
    VaultIntegrityError,
    existing_token,
    load_or_create_key,
    open_sealed,
    sealed_attributes,
    stored_item,
    validate_tenant,
)
from paypipe.domain.tokenization import RandomBytes, encrypt, keyed_token_bits

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    type Item = dict[str, AttributeValueTypeDef]

ACCOUNT_PURPOSE = "payee-account"
ACCOUNT_FINGERPRINT_PURPOSE = "account-fingerprint"
ACCOUNT_TOKEN_PREFIX = "acct_"  # noqa: S105 (a token prefix, not a secret)
FINGERPRINT_PREFIX = "afp_"


@dataclass(frozen=True)
class AccountToken:
    token: str
    last4: str
    fingerprint: str


def account_context(tenant: str) -> dict[str, str]:
    return {"purpose": ACCOUNT_PURPOSE, "tenant": tenant}


def _sealing_context(tenant: str, token: str) -> dict[str, str]:
    return {**account_context(tenant), "token": token}


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _token_key(token: str) -> Item:
    return {"pk": _s(f"account#{token}"), "sk": _s("account")}


def _fingerprint_key(fingerprint: str, tenant: str) -> Item:
    return {"pk": _s(f"accountfp#{fingerprint}"), "sk": _s(f"tenant#{tenant}")}


def _meta_key() -> Item:
    return {"pk": _s("meta#account-fingerprint-key"), "sk": _s("meta")}


def normalize_account(account_number: str) -> str:
    return account_number.strip().upper()


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def account_fingerprint(routing_number: str, account_number: str, key: bytes) -> str:
    """Keyed, stable identity of a bank account: the same routing and account, the same fingerprint."""
    message = f"{routing_number}:{normalize_account(account_number)}".encode("ascii")
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return FINGERPRINT_PREFIX + _base32(digest)


def account_token(fingerprint_key: bytes, tenant: str, fingerprint: str) -> str:
    """The account's token for the tenant: "acct_" + 32 base32 characters of ``keyed_token_bits``."""
    return ACCOUNT_TOKEN_PREFIX + _base32(
        keyed_token_bits(fingerprint_key, "account-token", tenant, fingerprint)
    )


class AccountVault:
    """Tokenizes payee account numbers and detokenizes them for the owning tenant only."""

    def __init__(
        self,
        table_name: str,
        dynamodb_client: DynamoDBClient,
        key_provider: KeyProvider,
        cache: DataKeyCache,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        self._table = table_name
        self._ddb = dynamodb_client
        self._keys = key_provider
        self._cache = cache
        self._clock = clock
        self._random_bytes = random_bytes
        self._fingerprint_key: bytes | None = None
        self._lock = threading.Lock()

    def tokenize(self, routing_number: str, account_number: str, *, tenant: str) -> AccountToken:
        """The account's token for this tenant; the same account and tenant always yield the same."""
        validate_tenant(tenant)
        account = normalize_account(account_number)
        if not account.isascii() or not account.isalnum():
            raise ValueError("an account number is letters and digits")
        key = self._fingerprint_key_bytes()
        fingerprint = account_fingerprint(routing_number, account, key)
        token = account_token(key, tenant, fingerprint)
        existing = existing_token(
            self._ddb, self._table, token, _token_key(token), _fingerprint_key(fingerprint, tenant)
        )
        if existing is None:
            data_key = self._cache.encryption_key(account_context(tenant), self._keys)
            item = self._item(
                token,
                tenant,
                routing=routing_number,
                account=account,
                fingerprint=fingerprint,
                data_key=data_key,
            )
            # Refused only when a concurrent tokenization of the same account stored it first.
            put_once(self._ddb, self._table, item)
            existing = token
        return AccountToken(existing, account[-4:], fingerprint)

    def detokenize(self, token: str, *, tenant: str) -> str:
        """The account number behind ``token``, only for the tenant that tokenized it."""
        validate_tenant(tenant)
        if not token.startswith(ACCOUNT_TOKEN_PREFIX):
            raise UnknownTokenError("malformed account token")
        item = stored_item(self._ddb, self._table, _token_key(token))
        if item is None:
            raise UnknownTokenError("unknown account token")
        plaintext = open_sealed(
            item,
            tenant=tenant,
            context=account_context(tenant),
            associated_data=_sealing_context(tenant, token),
            keys=self._keys,
            cache=self._cache,
        )
        try:
            return plaintext.decode("ascii")
        except ValueError:
            raise VaultIntegrityError("stored account data failed authentication") from None

    def _item(
        self, token: str, tenant: str, *, routing: str, account: str, fingerprint: str, data_key: DataKey
    ) -> Item:
        sealed = encrypt(
            account.encode("ascii"),
            data_key.plaintext,
            _sealing_context(tenant, token),
            random_bytes=self._random_bytes,
        )
        created = _s(self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return {
            **_token_key(token),
            "tenant": _s(tenant),
            "routing_number": _s(routing),
            "last4": _s(account[-4:]),
            **sealed_attributes(sealed, data_key, account_context(tenant)),
            "fingerprint": _s(fingerprint),
            "created_at": created,
        }

    def _fingerprint_key_bytes(self) -> bytes:
        with self._lock:
            if self._fingerprint_key is None:
                self._fingerprint_key = load_or_create_key(
                    self._ddb,
                    self._table,
                    _meta_key(),
                    purpose=ACCOUNT_FINGERPRINT_PURPOSE,
                    keys=self._keys,
                    clock=self._clock,
                )
            return self._fingerprint_key
