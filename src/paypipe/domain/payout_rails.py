"""The rails payouts leave by: which currencies can be paid out, and each rail's amount limits.

ACH (NACHA files to an ODFI) pays US dollars only. A currency without a rail here is refused at
validate, and the template's ``SupportedCurrencies`` admits only currencies listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from paypipe.domain.nacha import MAX_ENTRY_AMOUNT_CENTS, SAME_DAY_LIMIT_CENTS


@dataclass(frozen=True)
class PayoutRail:
    name: str
    currency: str
    max_entry_minor: int  # the largest amount one entry carries, in the currency's minor units
    same_day_max_minor: int  # the same, for a same-day entry


PAYOUT_RAILS: Final = MappingProxyType(
    {"USD": PayoutRail("ACH", "USD", MAX_ENTRY_AMOUNT_CENTS, SAME_DAY_LIMIT_CENTS)}
)


def rail_for(currency: str) -> PayoutRail | None:
    return PAYOUT_RAILS.get(currency)
