"""tokenize: PaymentValidated -> PaymentTokenized. No card number and no payee account number
leaves this step: both go into their vaults, and only tokens and last fours travel on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paypipe.adapters.account_vault import AccountVault
from paypipe.adapters.vault import CardVault
from paypipe.domain.validation import card_brand
from paypipe.events import models as ev
from paypipe.runtime.consumer import Consumer, Receipt, Route
from paypipe.runtime.entry import build_consumer
from paypipe.steps.vaults import account_vault_from_env, vault_from_env

STEP = "tokenize"


@dataclass(frozen=True)
class TokenizeStep:
    vault: CardVault
    accounts: AccountVault

    def on_validated(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        assert isinstance(event, ev.PaymentValidated)
        data = event.data
        pan = data.card.number.get_secret_value()
        tokenized = self.vault.tokenize(pan, data.card.exp_month, data.card.exp_year, tenant=data.tenant_id)
        brand = card_brand(pan)
        card = ev.CardRef(
            token=tokenized.token,
            fingerprint=tokenized.fingerprint_ref,
            bin6=tokenized.bin6,
            last4=tokenized.last4,
            brand=brand.value if brand else "UNKNOWN",
            exp_month=tokenized.exp_month,
            exp_year=tokenized.exp_year,
            issuing_country=data.card.issuing_country,
        )
        payee_ref = self._payee_ref(data.payee, data.tenant_id)
        fields = data.model_dump(exclude={"card", "payee"})
        out = ev.PaymentTokenizedData.model_validate({**fields, "card": card, "payee": payee_ref})
        return [
            ev.PaymentTokenized.create(
                payment_id=event.payment_id,
                data=out,
                producer=STEP,
                cause=event,
                occurred_at=event.occurred_at,  # the cause's time: a redelivery republishes it unchanged
            )
        ]

    def on_payee_validated(self, event: ev.Event, receipt: Receipt) -> Sequence[ev.Event]:
        """New bank details for a provider go into the account vault; only their token travels on."""
        assert isinstance(event, ev.PayeeAccountValidated)
        data = event.data
        replaced = ev.PayeeAccountReplacedData(
            tenant_id=data.tenant_id,
            provider_id=data.provider_id,
            payee=self._payee_ref(data.payee, data.tenant_id),
            replaced_at=data.received_at,
        )
        return [
            ev.PayeeAccountReplaced.create(
                payment_id=event.payment_id,
                data=replaced,
                producer=STEP,
                cause=event,
                occurred_at=data.received_at,
            )
        ]

    def _payee_ref(self, payee: ev.PayeeBankAccount, tenant: str) -> ev.PayeeRef:
        account = self.accounts.tokenize(payee.routing_number, payee.account_number, tenant=tenant)
        return ev.PayeeRef(
            name=payee.name,
            routing_number=payee.routing_number,
            account_token=account.token,
            account_last4=account.last4,
            account_fingerprint=account.fingerprint,
            account_type=payee.account_type,
            payee_type=payee.payee_type,
            tenant_id=tenant,
        )


def build() -> Consumer:
    step = TokenizeStep(vault_from_env(), account_vault_from_env())
    return build_consumer(STEP, routes(step))


def routes(step: TokenizeStep) -> dict[str, Route]:
    return {
        # No idempotency record: the vault gives a card and an account the same tokens every
        # time, so a redelivery publishes the same event (its id and its time from the cause);
        # content that differs for the payment is refused by fraud's marker.
        "PaymentValidated": Route(step.on_validated, idempotent=False),
        "PayeeAccountValidated": Route(step.on_payee_validated),
    }


def detokenize(vault: CardVault, request: Mapping[str, Any]) -> dict[str, str]:
    """Direct invocation by an authorised caller: {"token": ..., "tenant_id": ...} -> {"pan": ...}."""
    token = request.get("token")
    tenant = request.get("tenant_id", "default")
    if not isinstance(token, str) or not isinstance(tenant, str):
        raise ValueError("detokenize expects {'token': str, 'tenant_id': str}")
    return {"token": token, "pan": vault.detokenize(token, tenant=tenant)}


def build_detokenize() -> Callable[[Mapping[str, Any], Any], dict[str, str]]:
    vault = vault_from_env()
    return lambda request, _context: detokenize(vault, request)
