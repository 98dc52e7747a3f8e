from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from paypipe.adapters.vault import (
    CardVault,
    DataKey,
    DataKeyCache,
    KeyProvider,
    KmsKeyProvider,
    TenantMismatchError,
    UnknownTokenError,
    VaultIntegrityError,
)
from paypipe.domain.tokenization import InvalidCardError, luhn_valid
from tests.tables import create_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient

TABLE = "card-vault"
VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
FIXED_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def distinct_pans(count: int) -> list[str]:
    return [_with_check_digit(f"4{index:014d}") for index in range(count)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingProvider:
    """Wraps a KeyProvider and counts the calls that reach it."""

    def __init__(self, inner: KeyProvider) -> None:
        self.inner = inner
        self.generate_calls = 0
        self.decrypt_calls = 0

    def generate_data_key(self, context: Mapping[str, str]) -> DataKey:
        self.generate_calls += 1
        return self.inner.generate_data_key(context)

    def decrypt_data_key(self, encrypted_key: bytes, key_id: str, context: Mapping[str, str]) -> bytes:
        self.decrypt_calls += 1
        return self.inner.decrypt_data_key(encrypted_key, key_id, context)


@dataclass
class FakeProvider:
    """In-memory provider: keys are numbered, decryption checks the context."""

    issued: dict[bytes, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def generate_data_key(self, context: Mapping[str, str]) -> DataKey:
        with self.lock:
            serial = len(self.issued)
            plaintext = serial.to_bytes(32, "big")
            encrypted = b"enc-" + plaintext
            self.issued[encrypted] = (plaintext, dict(context))
        return DataKey(plaintext=plaintext, encrypted=encrypted, key_id="fake")

    def decrypt_data_key(self, encrypted_key: bytes, key_id: str, context: Mapping[str, str]) -> bytes:
        plaintext, issued_context = self.issued[encrypted_key]
        assert issued_context == dict(context)
        return plaintext


@dataclass
class Aws:
    kms: KMSClient
    dynamodb: DynamoDBClient
    key_id: str


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        kms = boto3.client("kms")
        dynamodb = boto3.client("dynamodb")
        key_id = kms.create_key(Description="card vault")["KeyMetadata"]["Arn"]
        create_table(dynamodb, TABLE)
        yield Aws(kms=kms, dynamodb=dynamodb, key_id=key_id)


@dataclass
class Harness:
    vault: CardVault
    cache: DataKeyCache
    provider: CountingProvider
    clock: FakeClock


def make_vault(aws: Aws, dynamodb: Any = None, **cache_options: Any) -> Harness:
    clock = FakeClock()
    cache = DataKeyCache(now=clock, **cache_options)
    provider = CountingProvider(KmsKeyProvider(aws.kms, aws.key_id))
    vault = CardVault(TABLE, dynamodb or aws.dynamodb, provider, cache, clock=lambda: FIXED_TIME)
    return Harness(vault=vault, cache=cache, provider=provider, clock=clock)


@pytest.fixture
def harness(aws: Aws) -> Harness:
    return make_vault(aws)


def scan_all(aws: Aws) -> list[dict[str, Any]]:
    return aws.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]


def get_item(aws: Aws, pk: str, sk: str) -> dict[str, Any]:
    return aws.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"]


def flatten(value: Any) -> Iterator[str | bytes]:
    if isinstance(value, dict):
        for item in value.values():
            yield from flatten(item)
    elif isinstance(value, list | set | tuple):
        for item in value:
            yield from flatten(item)
    elif isinstance(value, str | bytes):
        yield value
    else:
        yield str(value)


def luhn_runs(text: str) -> list[str]:
    """Every Luhn-valid 13-19 digit window inside any digit run (single space/dash separators)."""
    found = []
    for run in re.findall(r"[0-9](?:[ -]?[0-9])*", text):
        digits = run.replace(" ", "").replace("-", "")
        for start in range(len(digits)):
            for length in range(13, 20):
                window = digits[start : start + length]
                if len(window) == length and luhn_valid(window):
                    found.append(window)
    return found


# --- vault behaviour ----------------------------------------------------------------------


def test_round_trip(harness: Harness) -> None:
    card = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    assert re.fullmatch(r"tok_[a-z2-7]{32}", card.token)
    assert (card.bin6, card.last4, card.exp_month, card.exp_year) == ("411111", "1111", 12, 2030)
    assert card.fingerprint_ref.startswith("fp_")
    assert harness.vault.detokenize(card.token, tenant="acme") == VISA


def test_formatted_pan_is_normalised(harness: Harness) -> None:
    card = harness.vault.tokenize("4111 1111-1111 1111", 1, 2031, tenant="acme")
    assert harness.vault.detokenize(card.token, tenant="acme") == VISA
    assert harness.vault.tokenize(VISA, 1, 2031, tenant="acme").token == card.token


def test_same_card_same_tenant_same_token(harness: Harness) -> None:
    first = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    second = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    other_card = harness.vault.tokenize(MASTERCARD, 12, 2030, tenant="acme")
    assert first == second
    assert other_card.token != first.token
    assert other_card.fingerprint_ref != first.fingerprint_ref


def test_different_tenant_gets_different_token(harness: Harness) -> None:
    acme = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    globex = harness.vault.tokenize(VISA, 12, 2030, tenant="globex")
    assert acme.token != globex.token
    assert acme.fingerprint_ref == globex.fingerprint_ref
    assert harness.vault.detokenize(globex.token, tenant="globex") == VISA


def test_same_token_across_processes(aws: Aws) -> None:
    first = make_vault(aws).vault.tokenize(VISA, 12, 2030, tenant="acme")
    restarted = make_vault(aws)
    assert restarted.vault.tokenize(VISA, 12, 2030, tenant="acme").token == first.token
    assert restarted.vault.detokenize(first.token, tenant="acme") == VISA


def test_unknown_and_malformed_tokens(harness: Harness) -> None:
    with pytest.raises(UnknownTokenError):
        harness.vault.detokenize("tok_" + "a" * 32, tenant="acme")
    with pytest.raises(UnknownTokenError):
        harness.vault.detokenize("not-a-token", tenant="acme")


def test_tenant_mismatch(harness: Harness) -> None:
    card = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    with pytest.raises(TenantMismatchError) as excinfo:
        harness.vault.detokenize(card.token, tenant="globex")
    assert VISA not in str(excinfo.value)


def test_tampered_ciphertext_fails(aws: Aws, harness: Harness) -> None:
    card = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    item = get_item(aws, f"token#{card.token}", "card")
    ciphertext = bytearray(item["ciphertext"]["B"])
    ciphertext[0] ^= 0x01
    item["ciphertext"] = {"B": bytes(ciphertext)}
    aws.dynamodb.put_item(TableName=TABLE, Item=item)
    with pytest.raises(VaultIntegrityError):
        harness.vault.detokenize(card.token, tenant="acme")


def test_ciphertext_cannot_be_moved_between_tokens(aws: Aws, harness: Harness) -> None:
    victim = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    attacker = harness.vault.tokenize(MASTERCARD, 12, 2030, tenant="acme")
    victim_item = get_item(aws, f"token#{victim.token}", "card")
    attacker_item = get_item(aws, f"token#{attacker.token}", "card")
    for name in ("ciphertext", "nonce", "encrypted_data_key", "key_id"):
        attacker_item[name] = victim_item[name]
    aws.dynamodb.put_item(TableName=TABLE, Item=attacker_item)
    with pytest.raises(VaultIntegrityError):
        harness.vault.detokenize(attacker.token, tenant="acme")


def test_rewriting_tenant_in_item_fails_kms_context(aws: Aws) -> None:
    card = make_vault(aws).vault.tokenize(VISA, 12, 2030, tenant="acme")
    item = get_item(aws, f"token#{card.token}", "card")
    item["tenant"] = {"S": "evil"}
    item["encryption_context"] = {"M": {"purpose": {"S": "card-vault"}, "tenant": {"S": "evil"}}}
    aws.dynamodb.put_item(TableName=TABLE, Item=item)
    with pytest.raises(VaultIntegrityError):
        make_vault(aws).vault.detokenize(card.token, tenant="evil")


def test_no_pan_in_any_item(aws: Aws, harness: Harness) -> None:
    pans = [VISA, MASTERCARD, "378282246310005", *distinct_pans(20)]
    for index, pan in enumerate(pans):
        harness.vault.tokenize(pan, 1 + index % 12, 2030, tenant="acme" if index % 2 else "globex")
    items = scan_all(aws)
    assert len(items) == 1 + len(pans)  # the fingerprint key and one item per card
    # The KMS key's UUID (also embedded in moto's ciphertext blobs) is random and may by chance
    # hold a Luhn-valid digit run; it is known not to be card data.
    key_uuid = aws.key_id.rsplit("/", 1)[-1]
    for item in items:
        for value in flatten(item):
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            assert not any(pan in text for pan in pans)
            assert luhn_runs(text.replace(key_uuid, "|")) == []
        assert not {"pan", "cvv", "cvc", "card_number"} & set(item)


def test_token_item_layout(aws: Aws, harness: Harness) -> None:
    card = harness.vault.tokenize(VISA, 7, 2029, tenant="acme")
    item = get_item(aws, f"token#{card.token}", "card")
    assert item["tenant"] == {"S": "acme"}
    assert item["encryption_context"] == {"M": {"purpose": {"S": "card-vault"}, "tenant": {"S": "acme"}}}
    assert item["key_id"] == {"S": aws.key_id}
    assert len(item["nonce"]["B"]) == 12
    assert item["created_at"] == {"S": "2026-01-02T03:04:05Z"}
    assert item["fingerprint"] == {"S": card.fingerprint_ref}
    assert [i["pk"]["S"] for i in scan_all(aws)] == ["meta#fingerprint-key", f"token#{card.token}"]


def test_a_card_linked_to_a_random_token_keeps_it(aws: Aws, harness: Harness) -> None:
    """A card vaulted before tokens were keyed has a link to its random token: that stays its token."""
    keyed = harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    legacy = "tok_" + "b" * 32
    item = get_item(aws, f"token#{keyed.token}", "card")
    aws.dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    aws.dynamodb.put_item(TableName=TABLE, Item={**item, "pk": {"S": f"token#{legacy}"}})
    link = {"pk": {"S": f"fingerprint#{keyed.fingerprint_ref}"}, "sk": {"S": "tenant#acme"}}
    aws.dynamodb.put_item(TableName=TABLE, Item={**link, "token": {"S": legacy}})
    again = harness.vault.tokenize(VISA, 3, 2031, tenant="acme")
    assert again.token == legacy
    assert get_item(aws, f"token#{legacy}", "card")["exp_year"] == {"N": "2031"}
    assert not [i for i in scan_all(aws) if i["pk"]["S"] == f"token#{keyed.token}"]


def test_later_expiry_is_recorded_and_earlier_ignored(aws: Aws, harness: Harness) -> None:
    card = harness.vault.tokenize(VISA, 12, 2027, tenant="acme")
    harness.vault.tokenize(VISA, 3, 2030, tenant="acme")
    harness.vault.tokenize(VISA, 1, 2026, tenant="acme")
    item = get_item(aws, f"token#{card.token}", "card")
    assert (item["exp_month"], item["exp_year"]) == ({"N": "3"}, {"N": "2030"})


@pytest.mark.parametrize(
    ("pan", "month", "year"),
    [(VISA[:-1] + "2", 12, 2030), ("4111", 12, 2030), (VISA, 13, 2030), (VISA, 0, 2030), (VISA, 1, 30)],
)
def test_invalid_input_rejected_without_echo(harness: Harness, pan: str, month: int, year: int) -> None:
    with pytest.raises(InvalidCardError) as excinfo:
        harness.vault.tokenize(pan, month, year, tenant="acme")
    assert pan not in str(excinfo.value)


def test_cvv_is_not_accepted(harness: Harness) -> None:
    with pytest.raises(TypeError):
        harness.vault.tokenize(VISA, 12, 2030, tenant="acme", cvv="123")  # type: ignore[call-arg]


@pytest.mark.parametrize("tenant", ["", "a#b", "x" * 129, "line\nbreak"])
def test_invalid_tenant_rejected(harness: Harness, tenant: str) -> None:
    with pytest.raises(ValueError):
        harness.vault.tokenize(VISA, 12, 2030, tenant=tenant)


# --- races --------------------------------------------------------------------------------


class HideFirstGet:
    """DynamoDB client proxy whose first get_item for a pk prefix reports no item (a stale read)."""

    def __init__(self, client: DynamoDBClient, pk_prefix: str) -> None:
        self._client = client
        self._pk_prefix = pk_prefix
        self.hidden = 0

    def get_item(self, **kwargs: Any) -> Any:
        if not self.hidden and kwargs["Key"]["pk"]["S"].startswith(self._pk_prefix):
            self.hidden += 1
            return {}
        return self._client.get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_concurrent_tokenization_converges_on_one_token(aws: Aws) -> None:
    winner = make_vault(aws).vault.tokenize(VISA, 12, 2030, tenant="acme")
    racing_client = HideFirstGet(aws.dynamodb, "token#")
    loser = make_vault(aws, dynamodb=racing_client).vault.tokenize(VISA, 3, 2031, tenant="acme")
    assert racing_client.hidden == 1  # it missed the winner's item, and its conditional put was refused
    assert loser.token == winner.token
    [item] = [i for i in scan_all(aws) if i["pk"]["S"].startswith("token#")]
    assert make_vault(aws).vault.detokenize(winner.token, tenant="acme") == VISA
    assert item["exp_year"] == {"N": "2031"}  # the loser's later expiry still recorded


class RecordingReads(HideFirstGet):
    """Records each get_item's consistency; the first read of a pk prefix misses (not yet seen)."""

    def __init__(self, client: DynamoDBClient, pk_prefix: str) -> None:
        super().__init__(client, pk_prefix)
        self.consistent: list[bool] = []

    def get_item(self, **kwargs: Any) -> Any:
        self.consistent.append(bool(kwargs.get("ConsistentRead")))
        return super().get_item(**kwargs)


def test_detokenize_reads_eventually_consistent_and_again_consistently_on_a_miss(aws: Aws) -> None:
    card = make_vault(aws).vault.tokenize(VISA, 12, 2030, tenant="acme")
    settled = RecordingReads(aws.dynamodb, "nothing-hidden")
    make_vault(aws, dynamodb=settled).vault.detokenize(card.token, tenant="acme")
    assert settled.consistent[-1:] == [False]  # one read, half the units
    fresh = RecordingReads(aws.dynamodb, "token#")
    assert make_vault(aws, dynamodb=fresh).vault.detokenize(card.token, tenant="acme") == VISA
    assert fresh.hidden == 1 and fresh.consistent[-2:] == [False, True]
    with pytest.raises(UnknownTokenError):
        make_vault(aws).vault.detokenize("tok_" + "c" * 32, tenant="acme")


def test_fingerprint_key_creation_is_race_safe(aws: Aws) -> None:
    first = make_vault(aws)
    first_card = first.vault.tokenize(VISA, 12, 2030, tenant="acme")
    racing_client = HideFirstGet(aws.dynamodb, "meta#")
    second = make_vault(aws, dynamodb=racing_client)
    second_card = second.vault.tokenize(VISA, 12, 2030, tenant="acme")
    assert racing_client.hidden == 1
    assert second.provider.generate_calls == 1  # generated a key, lost the put, used the winner's
    assert second_card.fingerprint_ref == first_card.fingerprint_ref
    assert second_card.token == first_card.token
    assert len([i for i in scan_all(aws) if i["pk"]["S"] == "meta#fingerprint-key"]) == 1


def test_fingerprint_key_stored_encrypted_and_loaded_once(aws: Aws, harness: Harness) -> None:
    for pan in distinct_pans(5):
        harness.vault.tokenize(pan, 12, 2030, tenant="acme")
    meta = get_item(aws, "meta#fingerprint-key", "meta")
    assert meta["encryption_context"] == {"M": {"purpose": {"S": "card-fingerprint"}}}
    restarted = make_vault(aws)
    restarted.vault.tokenize(VISA, 12, 2030, tenant="acme")
    restarted.vault.tokenize(MASTERCARD, 12, 2030, tenant="acme")
    assert restarted.provider.decrypt_calls == 1


def test_custom_fingerprint_key_loader(aws: Aws) -> None:
    cache = DataKeyCache()
    provider = KmsKeyProvider(aws.kms, aws.key_id)
    vault = CardVault(TABLE, aws.dynamodb, provider, cache, lambda: b"k" * 32)
    vault.tokenize(VISA, 12, 2030, tenant="acme")
    assert all(item["pk"]["S"] != "meta#fingerprint-key" for item in scan_all(aws))


# --- KMS usage ----------------------------------------------------------------------------


def test_thousand_cards_use_few_kms_calls(aws: Aws) -> None:
    harness = make_vault(aws)
    tokens = [harness.vault.tokenize(pan, 12, 2030, tenant="acme").token for pan in distinct_pans(1000)]
    # One data key per 1000 messages, plus the one-off fingerprint key.
    assert harness.cache.kms_generate_calls == 1
    assert harness.provider.generate_calls == 2
    assert harness.provider.decrypt_calls == 0
    assert len(set(tokens)) == 1000


def test_data_key_rotates_after_max_messages(aws: Aws) -> None:
    harness = make_vault(aws, max_messages_per_key=100)
    pans = distinct_pans(1000)
    tokens = [harness.vault.tokenize(pan, 12, 2030, tenant="acme").token for pan in pans]
    assert harness.cache.kms_generate_calls == 10
    usage: dict[bytes, int] = {}
    for item in scan_all(aws):
        if item["pk"]["S"].startswith("token#"):
            blob = item["encrypted_data_key"]["B"]
            usage[blob] = usage.get(blob, 0) + 1
    assert sorted(usage.values()) == [100] * 10

    restarted = make_vault(aws)
    sample = range(0, 1000, 50)
    assert [restarted.vault.detokenize(tokens[i], tenant="acme") for i in sample] == [pans[i] for i in sample]
    # Every data key sealed two of the sampled tokens; detokenize never needs the fingerprint key.
    assert restarted.cache.kms_decrypt_calls == 10
    assert restarted.provider.decrypt_calls == 10


def test_data_key_rotates_after_max_age(aws: Aws) -> None:
    harness = make_vault(aws, max_age_seconds=300)
    pans = iter(distinct_pans(10))
    harness.vault.tokenize(next(pans), 12, 2030, tenant="acme")
    harness.clock.now = 299.9
    harness.vault.tokenize(next(pans), 12, 2030, tenant="acme")
    assert harness.cache.kms_generate_calls == 1
    harness.clock.now = 300.0
    harness.vault.tokenize(next(pans), 12, 2030, tenant="acme")
    assert harness.cache.kms_generate_calls == 2


def test_data_keys_are_not_shared_between_tenants(harness: Harness) -> None:
    harness.vault.tokenize(VISA, 12, 2030, tenant="acme")
    harness.vault.tokenize(MASTERCARD, 12, 2030, tenant="globex")
    harness.vault.tokenize(MASTERCARD, 12, 2030, tenant="acme")
    assert harness.cache.kms_generate_calls == 2


def test_detokenize_reuses_cached_key_until_it_expires(aws: Aws) -> None:
    writer = make_vault(aws)
    tokens = [writer.vault.tokenize(pan, 12, 2030, tenant="acme").token for pan in distinct_pans(5)]
    reader = make_vault(aws)
    for token in tokens:
        reader.vault.detokenize(token, tenant="acme")
    assert reader.cache.kms_decrypt_calls == 1
    reader.clock.now = 301
    reader.vault.detokenize(tokens[0], tenant="acme")
    assert reader.cache.kms_decrypt_calls == 2


def test_kms_provider_binds_context(aws: Aws) -> None:
    provider = KmsKeyProvider(aws.kms, aws.key_id)
    key = provider.generate_data_key({"purpose": "card-vault", "tenant": "acme"})
    assert len(key.plaintext) == 32
    assert key.plaintext not in key.encrypted
    assert "plaintext" not in repr(key)
    assert provider.decrypt_data_key(
        key.encrypted, key.key_id, {"tenant": "acme", "purpose": "card-vault"}
    ) == (key.plaintext)
    with pytest.raises(VaultIntegrityError):
        provider.decrypt_data_key(key.encrypted, key.key_id, {"purpose": "card-vault", "tenant": "globex"})


# --- DataKeyCache in isolation --------------------------------------------------------------


def test_cache_is_thread_safe_under_message_limit() -> None:
    provider = FakeProvider()
    cache = DataKeyCache(now=FakeClock(), max_messages_per_key=10)
    issued: list[DataKey] = []
    issued_lock = threading.Lock()

    def worker() -> None:
        for _ in range(125):
            key = cache.encryption_key({"tenant": "acme"}, provider)
            with issued_lock:
                issued.append(key)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.kms_generate_calls == 100
    counts: dict[bytes, int] = {}
    for key in issued:
        counts[key.encrypted] = counts.get(key.encrypted, 0) + 1
    assert sorted(counts.values()) == [10] * 100


def test_cache_seeds_decryption_with_generated_keys() -> None:
    provider = FakeProvider()
    cache = DataKeyCache(now=FakeClock())
    key = cache.encryption_key({"tenant": "acme"}, provider)
    assert cache.decryption_key(key.encrypted, key.key_id, {"tenant": "acme"}, provider) == key.plaintext
    assert cache.kms_decrypt_calls == 0


def test_decryption_cache_is_keyed_by_context() -> None:
    provider = FakeProvider()
    key = provider.generate_data_key({"tenant": "acme"})
    cache = DataKeyCache(now=FakeClock())
    cache.decryption_key(key.encrypted, key.key_id, {"tenant": "acme"}, provider)
    with pytest.raises(AssertionError):  # the fake provider rejects the wrong context
        cache.decryption_key(key.encrypted, key.key_id, {"tenant": "globex"}, provider)
    assert cache.kms_decrypt_calls == 1


def test_cache_evicts_least_recently_used_contexts() -> None:
    provider = FakeProvider()
    cache = DataKeyCache(now=FakeClock(), max_entries=2)
    for tenant in ("a", "b", "a", "c", "a"):
        cache.encryption_key({"tenant": tenant}, provider)
    assert cache.kms_generate_calls == 3  # "a" stayed cached; "b" was evicted by "c"
    cache.encryption_key({"tenant": "b"}, provider)
    assert cache.kms_generate_calls == 4


def test_clear_forgets_keys() -> None:
    provider = FakeProvider()
    cache = DataKeyCache(now=FakeClock())
    cache.encryption_key({"tenant": "acme"}, provider)
    cache.clear()
    cache.encryption_key({"tenant": "acme"}, provider)
    assert cache.kms_generate_calls == 2


@pytest.mark.parametrize("options", [{"max_age_seconds": 0}, {"max_messages_per_key": 0}, {"max_entries": 0}])
def test_cache_rejects_non_positive_bounds(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DataKeyCache(**options)  # type: ignore[arg-type]
