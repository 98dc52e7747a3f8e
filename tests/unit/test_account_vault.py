"""The payee account vault: tokens, last fours and fingerprints out; account numbers only back to
their tenant, and only from an item that authenticates."""

from __future__ import annotations

from typing import Any

import pytest

from paypipe.adapters.account_vault import ACCOUNT_PURPOSE, AccountVault
from paypipe.adapters.vault import (
    DataKeyCache,
    KmsKeyProvider,
    TenantMismatchError,
    UnknownTokenError,
    VaultIntegrityError,
)
from tests.unit.test_vault import (
    TABLE,
    Aws,
    CountingProvider,
    HideFirstGet,
    aws,
    flatten,
    get_item,
    scan_all,
)

__all__ = ["aws"]  # the fixture, shared with the card vault's tests

ROUTING = "021000021"


def make_accounts(aws: Aws) -> tuple[AccountVault, CountingProvider]:
    provider = CountingProvider(KmsKeyProvider(aws.kms, aws.key_id))
    return AccountVault(TABLE, aws.dynamodb, provider, DataKeyCache()), provider


def test_round_trip_gives_a_token_the_last_four_and_a_fingerprint(aws: Aws) -> None:
    vault, _ = make_accounts(aws)
    account = vault.tokenize(ROUTING, "0205030969", tenant="acme")
    assert account.token.startswith("acct_") and account.last4 == "0969"
    assert account.fingerprint.startswith("afp_")
    assert vault.detokenize(account.token, tenant="acme") == "0205030969"


def test_one_account_one_token_per_tenant_and_one_fingerprint_per_routing_and_account(aws: Aws) -> None:
    vault, _ = make_accounts(aws)
    first = vault.tokenize(ROUTING, "12345678", tenant="acme")
    assert vault.tokenize(ROUTING, " 12345678 ", tenant="acme") == first
    assert make_accounts(aws)[0].tokenize(ROUTING, "12345678", tenant="acme") == first  # another process
    other_tenant = vault.tokenize(ROUTING, "12345678", tenant="globex")
    assert other_tenant.token != first.token and other_tenant.fingerprint == first.fingerprint
    assert vault.tokenize("011000015", "12345678", tenant="acme").fingerprint != first.fingerprint


def test_an_account_goes_back_only_to_its_tenant_and_only_for_a_token_the_vault_issued(aws: Aws) -> None:
    vault, _ = make_accounts(aws)
    account = vault.tokenize(ROUTING, "12345678", tenant="acme")
    with pytest.raises(TenantMismatchError):
        vault.detokenize(account.token, tenant="globex")
    with pytest.raises(UnknownTokenError):
        vault.detokenize("acct_neverissued", tenant="acme")
    with pytest.raises(UnknownTokenError):
        vault.detokenize("tok_aaaa", tenant="acme")  # a card token is no account token


def test_an_account_is_one_item_and_a_racing_tokenization_finds_it(aws: Aws) -> None:
    vault, _ = make_accounts(aws)
    first = vault.tokenize(ROUTING, "12345678", tenant="acme")
    racing = HideFirstGet(aws.dynamodb, "account#")
    racer = AccountVault(TABLE, racing, KmsKeyProvider(aws.kms, aws.key_id), DataKeyCache())
    assert racer.tokenize(ROUTING, "12345678", tenant="acme") == first
    assert racing.hidden == 1  # it missed the stored item and its conditional put was refused
    assert [i["pk"]["S"] for i in scan_all(aws)] == [f"account#{first.token}", "meta#account-fingerprint-key"]
    assert vault.detokenize(first.token, tenant="acme") == "12345678"


def test_an_account_linked_to_a_random_token_keeps_it(aws: Aws) -> None:
    vault, _ = make_accounts(aws)
    keyed = vault.tokenize(ROUTING, "12345678", tenant="acme")
    item = get_item(aws, f"account#{keyed.token}", "account")
    aws.dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    link = {"pk": {"S": f"accountfp#{keyed.fingerprint}"}, "sk": {"S": "tenant#acme"}}
    aws.dynamodb.put_item(TableName=TABLE, Item={**link, "token": {"S": "acct_legacy"}})
    assert vault.tokenize(ROUTING, "12345678", tenant="acme").token == "acct_legacy"
    assert not [i for i in scan_all(aws) if i["pk"]["S"].startswith("account#")]


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_a_tampered_item_does_not_authenticate(aws: Aws, field: str) -> None:
    vault, _ = make_accounts(aws)
    account = vault.tokenize(ROUTING, "12345678", tenant="acme")
    item = get_item(aws, f"account#{account.token}", "account")
    value = bytearray(item[field]["B"])
    value[0] ^= 0x01
    item[field] = {"B": bytes(value)}
    aws.dynamodb.put_item(TableName=TABLE, Item=item)
    with pytest.raises(VaultIntegrityError):
        vault.detokenize(account.token, tenant="acme")


def test_ciphertext_cannot_be_moved_to_another_token(aws: Aws) -> None:
    vault, _ = make_accounts(aws)
    victim = vault.tokenize(ROUTING, "11112222", tenant="acme")
    attacker = vault.tokenize(ROUTING, "33334444", tenant="acme")
    victim_item = get_item(aws, f"account#{victim.token}", "account")
    attacker_item = get_item(aws, f"account#{attacker.token}", "account")
    for name in ("ciphertext", "nonce", "encrypted_data_key", "key_id"):
        attacker_item[name] = victim_item[name]
    aws.dynamodb.put_item(TableName=TABLE, Item=attacker_item)
    with pytest.raises(VaultIntegrityError):
        vault.detokenize(attacker.token, tenant="acme")


def test_items_hold_no_account_number_and_keys_are_bound_to_the_payee_account_purpose(aws: Aws) -> None:
    vault, provider = make_accounts(aws)
    accounts = [f"{index:04d}98765432" for index in range(20)]
    for index, number in enumerate(accounts):
        vault.tokenize(ROUTING, number, tenant="acme" if index % 2 else "globex")
    items = scan_all(aws)
    texts = [value for item in items for value in flatten(item) if isinstance(value, str)]
    assert not [text for text in texts if any(number in text for number in accounts)]
    contexts: list[dict[str, Any]] = [
        {key: value["S"] for key, value in item["encryption_context"]["M"].items()}
        for item in items
        if item["pk"]["S"].startswith("account#")
    ]
    assert len(contexts) == len(accounts)
    assert {context["purpose"] for context in contexts} == {ACCOUNT_PURPOSE}
    assert provider.generate_calls <= 3  # one data key per tenant, one fingerprint key


def test_an_account_number_that_is_not_letters_and_digits_is_refused_without_echo(aws: Aws) -> None:
    vault, _ = make_accounts(aws)
    with pytest.raises(ValueError, match="letters and digits") as raised:
        vault.tokenize(ROUTING, "12-34;5678", tenant="acme")
    assert "5678" not in str(raised.value)
