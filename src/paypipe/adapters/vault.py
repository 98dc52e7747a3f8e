"""Card vault: KMS envelope encryption of PANs stored in a DynamoDB table keyed by `pk`/`sk`.

Item layout (all items share the table; no secondary indexes):

- ``pk="token#<token>", sk="card"``: tenant, ciphertext, nonce, encrypted_data_key, key_id,
  encryption_context, bin6, last4, exp_month, exp_year, exp_yyyymm, fingerprint, created_at.
  The token is keyed by the card and tenant (``card_token``), so one conditional PutItem stores a
  new card and a racing tokenization of the same card finds it.
- ``pk="fingerprint#<fingerprint>", sk="tenant#<tenant>"``: token, created_at. The link a card
  vaulted under a random token keeps (that token stays the card's); read, no longer written.
- ``pk="meta#fingerprint-key", sk="meta"``: encrypted_key, key_id, encryption_context, created_at.

The KMS encryption context of a card data key is ``{"purpose": "card-vault", "tenant": ...}``;
the AES-GCM associated data additionally binds the token, so ciphertext cannot be moved between
token items. Neither the PAN nor a CVV is ever written, logged or put in an error message.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import ClientError

from paypipe.adapters.dynamo import put_once
from paypipe.domain.tokenization import (
    DecryptionError,
    InvalidCardError,
    RandomBytes,
    Sealed,
    canonical_context,
    card_fingerprint,
    card_token,
    decrypt,
    encrypt,
    is_token,
    mask,
    normalize_pan,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef
    from mypy_boto3_kms import KMSClient

CARD_VAULT_PURPOSE = "card-vault"
FINGERPRINT_KEY_PURPOSE = "card-fingerprint"
FINGERPRINT_KEY_PK = "meta#fingerprint-key"
FINGERPRINT_KEY_SK = "meta"
CARD_ITEM_SK = "card"
MIN_EXP_YEAR = 2000
MAX_EXP_YEAR = 2099
MAX_TENANT_LENGTH = 128

type Item = dict[str, AttributeValueTypeDef]


class VaultError(Exception):
    """Base class for vault failures. Messages never contain card data."""


class UnknownTokenError(VaultError):
    """The token does not exist (or is not a well-formed token)."""


class TenantMismatchError(VaultError):
    """The token exists but belongs to a different tenant."""


class VaultIntegrityError(VaultError):
    """Stored card data or key material failed authentication or is malformed."""


@dataclass(frozen=True)
class DataKey:
    """A KMS data key: plaintext for local AES, the encrypted blob to store, and the KMS key ARN."""

    plaintext: bytes = field(repr=False)
    encrypted: bytes = field(repr=False)
    key_id: str


class KeyProvider(Protocol):
    def generate_data_key(self, context: Mapping[str, str]) -> DataKey: ...

    def decrypt_data_key(self, encrypted_key: bytes, key_id: str, context: Mapping[str, str]) -> bytes: ...


class KmsKeyProvider:
    """KeyProvider backed by AWS KMS (needs kms:GenerateDataKey and kms:Decrypt on `key_id`)."""

    def __init__(self, kms_client: KMSClient, key_id: str) -> None:
        self._kms = kms_client
        self._key_id = key_id

    def generate_data_key(self, context: Mapping[str, str]) -> DataKey:
        response = self._kms.generate_data_key(
            KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=dict(context)
        )
        return DataKey(
            plaintext=response["Plaintext"], encrypted=response["CiphertextBlob"], key_id=response["KeyId"]
        )

    def decrypt_data_key(self, encrypted_key: bytes, key_id: str, context: Mapping[str, str]) -> bytes:
        try:
            response = self._kms.decrypt(
                CiphertextBlob=encrypted_key, KeyId=key_id, EncryptionContext=dict(context)
            )
        except ClientError as error:
            if _error_code(error) in {"InvalidCiphertextException", "IncorrectKeyException"}:
                raise VaultIntegrityError("data key does not decrypt under this key and context") from None
            raise
        return response["Plaintext"]


@dataclass
class _CachedKey:
    key: DataKey
    created_at: float
    messages: int = 0


@dataclass
class _CachedPlaintext:
    plaintext: bytes = field(repr=False)
    created_at: float


class DataKeyCache:
    """Bounded, thread-safe cache of plaintext data keys, in front of a KeyProvider.

    Encryption keys are reused only for the same encryption context, for at most
    `max_age_seconds` and `max_messages_per_key` encryptions. Decrypted keys are cached by
    (encrypted blob, context) for at most `max_age_seconds`. Each cache holds at most
    `max_entries` contexts/blobs (least recently used evicted). Provider calls happen under the
    lock, so concurrent misses do not stampede KMS.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.monotonic,
        max_age_seconds: float = 300.0,
        max_messages_per_key: int = 1000,
        max_entries: int = 1024,
    ) -> None:
        if max_age_seconds <= 0 or max_messages_per_key < 1 or max_entries < 1:
            raise ValueError("cache bounds must be positive")
        self._now = now
        self._max_age = max_age_seconds
        self._max_messages = max_messages_per_key
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._encryption: OrderedDict[bytes, _CachedKey] = OrderedDict()
        self._decryption: OrderedDict[tuple[bytes, bytes], _CachedPlaintext] = OrderedDict()
        self._generate_calls = 0
        self._decrypt_calls = 0

    @property
    def kms_generate_calls(self) -> int:
        return self._generate_calls

    @property
    def kms_decrypt_calls(self) -> int:
        return self._decrypt_calls

    def encryption_key(self, context: Mapping[str, str], provider: KeyProvider) -> DataKey:
        """A data key for one more encryption under `context`, generating a new one when due."""
        context_id = canonical_context(context)
        with self._lock:
            now = self._now()
            entry = self._encryption.get(context_id)
            if (
                entry is None
                or not self._fresh(entry.created_at, now)
                or entry.messages >= self._max_messages
            ):
                key = provider.generate_data_key(context)
                self._generate_calls += 1
                entry = _CachedKey(key=key, created_at=now)
                self._remember(self._encryption, context_id, entry)
                self._remember(
                    self._decryption, (key.encrypted, context_id), _CachedPlaintext(key.plaintext, now)
                )
            self._encryption.move_to_end(context_id)
            entry.messages += 1
            return entry.key

    def decryption_key(
        self, encrypted_key: bytes, key_id: str, context: Mapping[str, str], provider: KeyProvider
    ) -> bytes:
        """The plaintext of a stored data key, decrypting through the provider on a miss."""
        cache_key = (encrypted_key, canonical_context(context))
        with self._lock:
            now = self._now()
            entry = self._decryption.get(cache_key)
            if entry is None or not self._fresh(entry.created_at, now):
                plaintext = provider.decrypt_data_key(encrypted_key, key_id, context)
                self._decrypt_calls += 1
                entry = _CachedPlaintext(plaintext, now)
                self._remember(self._decryption, cache_key, entry)
            self._decryption.move_to_end(cache_key)
            return entry.plaintext

    def clear(self) -> None:
        with self._lock:
            self._encryption.clear()
            self._decryption.clear()

    def _fresh(self, created_at: float, now: float) -> bool:
        return 0 <= now - created_at < self._max_age

    def _remember[K: Hashable, V](self, entries: OrderedDict[K, V], key: K, value: V) -> None:
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self._max_entries:
            entries.popitem(last=False)


@dataclass(frozen=True)
class TokenizedCard:
    token: str
    bin6: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint_ref: str


# --- pure item codecs ---------------------------------------------------------------------


def card_context(tenant: str) -> dict[str, str]:
    """KMS encryption context for a tenant's card data keys."""
    return {"purpose": CARD_VAULT_PURPOSE, "tenant": tenant}


def sealing_context(tenant: str, token: str) -> dict[str, str]:
    """AES-GCM associated data for one card: the KMS context plus the token."""
    return {**card_context(tenant), "token": token}


def token_key(token: str) -> Item:
    return {"pk": {"S": f"token#{token}"}, "sk": {"S": CARD_ITEM_SK}}


def fingerprint_key(fingerprint: str, tenant: str) -> Item:
    return {"pk": {"S": f"fingerprint#{fingerprint}"}, "sk": {"S": f"tenant#{tenant}"}}


def meta_key() -> Item:
    return {"pk": {"S": FINGERPRINT_KEY_PK}, "sk": {"S": FINGERPRINT_KEY_SK}}


def _string_map(values: Mapping[str, str]) -> AttributeValueTypeDef:
    return {"M": {name: {"S": value} for name, value in values.items()}}


def token_item(
    *,
    token: str,
    tenant: str,
    sealed: Sealed,
    data_key: DataKey,
    card: TokenizedCard,
    created_at: datetime,
) -> Item:
    return {
        **token_key(token),
        "tenant": {"S": tenant},
        **sealed_attributes(sealed, data_key, card_context(tenant)),
        "bin6": {"S": card.bin6},
        "last4": {"S": card.last4},
        "exp_month": {"N": str(card.exp_month)},
        "exp_year": {"N": str(card.exp_year)},
        "exp_yyyymm": {"N": str(_yyyymm(card.exp_year, card.exp_month))},
        "fingerprint": {"S": card.fingerprint_ref},
        "created_at": {"S": _iso(created_at)},
    }


def sealed_attributes(sealed: Sealed, data_key: DataKey, context: Mapping[str, str]) -> Item:
    """The attributes of an envelope-encrypted value: ciphertext, nonce, its data key and context."""
    return {
        "ciphertext": {"B": sealed.ciphertext},
        "nonce": {"B": sealed.nonce},
        "encrypted_data_key": {"B": data_key.encrypted},
        "key_id": {"S": data_key.key_id},
        "encryption_context": _string_map(context),
    }


def open_sealed(
    item: Item,
    *,
    tenant: str,
    context: Mapping[str, str],
    associated_data: Mapping[str, str],
    keys: KeyProvider,
    cache: DataKeyCache,
) -> bytes:
    """The plaintext of a vault item, for its own tenant only, from an item that authenticates."""
    stored_context = _read_string_map(item, "encryption_context")
    if stored_context.get("tenant") != tenant or _read_string(item, "tenant") != tenant:
        raise TenantMismatchError("token belongs to a different tenant")
    if stored_context != dict(context):
        raise VaultIntegrityError("vault item has an unexpected encryption context")
    data_key = cache.decryption_key(
        _read_bytes(item, "encrypted_data_key"), _read_string(item, "key_id"), context, keys
    )
    try:
        sealed = Sealed(nonce=_read_bytes(item, "nonce"), ciphertext=_read_bytes(item, "ciphertext"))
        return decrypt(sealed, data_key, associated_data)
    except (DecryptionError, ValueError):
        raise VaultIntegrityError("stored vault data failed authentication") from None


def existing_token(ddb: DynamoDBClient, table: str, token: str, item_key: Item, link_key: Item) -> str | None:
    """A vaulted value's token if it is stored: ``token`` (keyed) when its item is at ``item_key``,
    or the random one the link at ``link_key`` names (a value vaulted before tokens were keyed).
    Eventually consistent reads are enough: the items are written once, and a read that misses a
    new one only sends the caller to the conditional write, which refuses."""
    if "Item" in ddb.get_item(TableName=table, Key=item_key):
        return token
    link = ddb.get_item(TableName=table, Key=link_key).get("Item")
    return None if link is None else _read_string(link, "token")


def stored_item(ddb: DynamoDBClient, table: str, key: Item) -> Item | None:
    """A vault item, read eventually consistent (half the units) and only on a miss consistently:
    a token item never changes what it seals, so a stale copy opens the same value, and a miss may
    only be a write of the last second or so."""
    item = ddb.get_item(TableName=table, Key=key).get("Item")
    if item is None:
        item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    return item


def meta_item(data_key: DataKey, context: Mapping[str, str], created_at: datetime) -> Item:
    return {
        **meta_key(),
        "encrypted_key": {"B": data_key.encrypted},
        "key_id": {"S": data_key.key_id},
        "encryption_context": _string_map(context),
        "created_at": {"S": _iso(created_at)},
    }


def _read_string(item: Item, name: str) -> str:
    value = item.get(name, {}).get("S")
    if value is None:
        raise VaultIntegrityError(f"vault item lacks string attribute {name!r}")
    return value


def _read_bytes(item: Item, name: str) -> bytes:
    value = item.get(name, {}).get("B")
    if value is None:
        raise VaultIntegrityError(f"vault item lacks binary attribute {name!r}")
    return bytes(value)


def _read_string_map(item: Item, name: str) -> dict[str, str]:
    raw = item.get(name, {}).get("M")
    if raw is None:
        raise VaultIntegrityError(f"vault item lacks map attribute {name!r}")
    result: dict[str, str] = {}
    for key, value in raw.items():
        text = value.get("S")
        if not isinstance(text, str):
            raise VaultIntegrityError(f"vault item attribute {name!r} holds a non-string value")
        result[key] = text
    return result


def _yyyymm(year: int, month: int) -> int:
    return year * 100 + month


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def validate_tenant(tenant: str) -> str:
    if not tenant or len(tenant) > MAX_TENANT_LENGTH or not tenant.isprintable() or "#" in tenant:
        raise ValueError(f"tenant must be 1-{MAX_TENANT_LENGTH} printable characters without '#'")
    return tenant


def validate_expiry(exp_month: int, exp_year: int) -> None:
    if not 1 <= exp_month <= 12:
        raise InvalidCardError("expiry month must be 1-12")
    if not MIN_EXP_YEAR <= exp_year <= MAX_EXP_YEAR:
        raise InvalidCardError(f"expiry year must be a four-digit year {MIN_EXP_YEAR}-{MAX_EXP_YEAR}")


# --- adapter ------------------------------------------------------------------------------


class CardVault:
    """Tokenizes PANs into a DynamoDB vault and detokenizes them for the owning tenant only.

    Create one instance per process: the fingerprint key is loaded (and, the first time ever,
    created) on first use and then kept in memory. `fingerprint_key_loader` replaces that
    KMS-backed loader, e.g. to source the key elsewhere.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb_client: DynamoDBClient,
        key_provider: KeyProvider,
        cache: DataKeyCache,
        fingerprint_key_loader: Callable[[], bytes] | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        self._table = table_name
        self._ddb = dynamodb_client
        self._keys = key_provider
        self._cache = cache
        self._load_fingerprint_key = fingerprint_key_loader or self._load_or_create_fingerprint_key
        self._clock = clock
        self._random_bytes = random_bytes
        self._fingerprint_key_lock = threading.Lock()
        self._fingerprint_key: bytes | None = None

    def tokenize(self, pan: str, exp_month: int, exp_year: int, *, tenant: str) -> TokenizedCard:
        """Token for this card and tenant; the same card and tenant always yield the same token."""
        validate_tenant(tenant)
        validate_expiry(exp_month, exp_year)
        digits = normalize_pan(pan)
        card_mask = mask(digits)
        fingerprint = card_fingerprint(digits, self._fingerprint_key_bytes())

        def card(token: str) -> TokenizedCard:
            return TokenizedCard(token, card_mask.bin6, card_mask.last4, exp_month, exp_year, fingerprint)

        token = card_token(self._fingerprint_key_bytes(), tenant, fingerprint)
        existing = existing_token(
            self._ddb, self._table, token, token_key(token), fingerprint_key(fingerprint, tenant)
        )
        if existing is None:
            data_key = self._cache.encryption_key(card_context(tenant), self._keys)
            sealed = encrypt(
                digits.encode("ascii"),
                data_key.plaintext,
                sealing_context(tenant, token),
                random_bytes=self._random_bytes,
            )
            item = token_item(
                token=token,
                tenant=tenant,
                sealed=sealed,
                data_key=data_key,
                card=card(token),
                created_at=self._clock(),
            )
            if put_once(self._ddb, self._table, item) is None:
                return card(token)
            existing = token  # a concurrent tokenization of the same card stored it first
        self._refresh_expiry(existing, tenant, exp_month, exp_year)
        return card(existing)

    def detokenize(self, token: str, *, tenant: str) -> str:
        """The PAN behind `token`, only for the tenant that tokenized it."""
        validate_tenant(tenant)
        if not is_token(token):
            raise UnknownTokenError("malformed token")
        item = stored_item(self._ddb, self._table, token_key(token))
        if item is None:
            raise UnknownTokenError("unknown token")
        plaintext = open_sealed(
            item,
            tenant=tenant,
            context=card_context(tenant),
            associated_data=sealing_context(tenant, token),
            keys=self._keys,
            cache=self._cache,
        )
        try:
            return plaintext.decode("ascii")
        except ValueError:
            raise VaultIntegrityError("stored card data failed authentication") from None

    # --- DynamoDB operations ----------------------------------------------------------------

    def _refresh_expiry(self, token: str, tenant: str, exp_month: int, exp_year: int) -> None:
        """Record a later expiry (a reissued card); earlier or equal expiries are ignored."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=token_key(token),
                UpdateExpression="SET exp_month = :month, exp_year = :year, exp_yyyymm = :yyyymm",
                ConditionExpression="attribute_exists(pk) AND tenant = :tenant AND exp_yyyymm < :yyyymm",
                ExpressionAttributeValues={
                    ":month": {"N": str(exp_month)},
                    ":year": {"N": str(exp_year)},
                    ":yyyymm": {"N": str(_yyyymm(exp_year, exp_month))},
                    ":tenant": {"S": tenant},
                },
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise

    def _fingerprint_key_bytes(self) -> bytes:
        with self._fingerprint_key_lock:
            if self._fingerprint_key is None:
                self._fingerprint_key = self._load_fingerprint_key()
            return self._fingerprint_key

    def _load_or_create_fingerprint_key(self) -> bytes:
        return load_or_create_key(
            self._ddb,
            self._table,
            meta_key(),
            purpose=FINGERPRINT_KEY_PURPOSE,
            keys=self._keys,
            clock=self._clock,
        )


def load_or_create_key(
    ddb: DynamoDBClient,
    table: str,
    key: Item,
    *,
    purpose: str,
    keys: KeyProvider,
    clock: Callable[[], datetime],
) -> bytes:
    """Decrypt a vault's keyed-hash key stored at ``key``, creating it race-safely if it does not exist."""
    context = {"purpose": purpose}
    item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    if item is None:
        generated = keys.generate_data_key(context)
        try:
            ddb.put_item(
                TableName=table,
                Item={**meta_item(generated, context, clock()), **key},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
        else:
            return generated.plaintext
        item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        if item is None:
            raise VaultIntegrityError("key item vanished after a conflicting write")
    if _read_string_map(item, "encryption_context") != context:
        raise VaultIntegrityError("key item has an unexpected encryption context")
    return keys.decrypt_data_key(_read_bytes(item, "encrypted_key"), _read_string(item, "key_id"), context)
