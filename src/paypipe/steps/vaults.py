"""The vaults as the stack configures them, for every function that vaults or reads card data or
payee accounts (tokenize, charge, detokenize, the ACH cut and returns): no step logic imported."""

from __future__ import annotations

from paypipe.adapters.account_vault import AccountVault
from paypipe.adapters.vault import CardVault, DataKeyCache, KmsKeyProvider
from paypipe.runtime.aws import client, int_setting, setting


def _key_cache() -> DataKeyCache:
    return DataKeyCache(
        max_age_seconds=int_setting("VAULT_DATA_KEY_MAX_AGE_SECONDS", 300),
        max_messages_per_key=int_setting("VAULT_DATA_KEY_MAX_MESSAGES", 1000),
    )


def vault_from_env() -> CardVault:
    provider = KmsKeyProvider(client("kms"), setting("VAULT_KEY_ID"))
    return CardVault(setting("VAULT_TABLE"), client("dynamodb"), provider, _key_cache())


def account_vault_from_env() -> AccountVault:
    provider = KmsKeyProvider(client("kms"), setting("VAULT_KEY_ID"))
    return AccountVault(setting("VAULT_TABLE"), client("dynamodb"), provider, _key_cache())
