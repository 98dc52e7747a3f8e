"""The Nacha Operating Rules' return reason codes and change codes, stated once.

The reader picks an addenda 99 or 98 layout by these codes, the returns consumer asks whether an
account can take further credits, and ``paypipe ach show`` prints their titles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final


class ReturnKind(Enum):
    RETURN = "return"  # RDFI or ACH operator returns the entry (Appendix Four, part 4.2)
    DISHONORED = "dishonored"  # ODFI dishonors a return (R61, R62, R67-R70)
    CONTESTED = "contested"  # RDFI contests a dishonored return (R71-R77)


@dataclass(frozen=True)
class ReturnReason:
    code: str
    title: str
    # These account details cannot take another credit: the payee must give new ones.
    stops_credits: bool = False
    kind: ReturnKind = ReturnKind.RETURN


_DISHONORED = ReturnKind.DISHONORED
_CONTESTED = ReturnKind.CONTESTED

# fmt: off
RETURN_REASONS: Final = {reason.code: reason for reason in (
    ReturnReason("R01", "Insufficient Funds"),
    ReturnReason("R02", "Account Closed", stops_credits=True),
    ReturnReason("R03", "No Account/Unable to Locate Account", stops_credits=True),
    ReturnReason("R04", "Invalid Account Number Structure", stops_credits=True),
    ReturnReason("R05", "Unauthorized Debit to Consumer Account Using Corporate SEC Code"),
    ReturnReason("R06", "Returned per ODFI's Request"),
    ReturnReason("R07", "Authorization Revoked by Customer"),
    ReturnReason("R08", "Payment Stopped"),
    ReturnReason("R09", "Uncollected Funds"),
    ReturnReason("R10", "Customer Advises Originator is Not Known to Receiver and/or Is Not Authorized "
                        "by Receiver to Debit Receiver's Account"),
    ReturnReason("R11", "Customer Advises Entry Not in Accordance with the Terms of the Authorization"),
    ReturnReason("R12", "Account Sold to Another DFI", stops_credits=True),
    ReturnReason("R13", "Invalid ACH Routing Number", stops_credits=True),
    ReturnReason("R14", "Representative Payee Deceased or Unable to Continue in That Capacity",
                 stops_credits=True),
    ReturnReason("R15", "Beneficiary or Account Holder (Other Than a Representative Payee) Deceased",
                 stops_credits=True),
    ReturnReason("R16", "Account Frozen/Entry Returned per OFAC Instruction", stops_credits=True),
    ReturnReason("R17", "File Record Edit Criteria/Entry with Invalid Account Number Initiated Under "
                        "Questionable Circumstances/Return of Improperly-Initiated Reversal"),
    ReturnReason("R18", "Improper Effective Entry Date"),
    ReturnReason("R19", "Amount Field Error"),
    ReturnReason("R20", "Non-Transaction Account", stops_credits=True),
    ReturnReason("R21", "Invalid Company Identification"),
    ReturnReason("R22", "Invalid Individual ID Number"),
    ReturnReason("R23", "Credit Entry Refused by Receiver"),
    ReturnReason("R24", "Duplicate Entry"),
    ReturnReason("R25", "Addenda Error"),
    ReturnReason("R26", "Mandatory Field Error"),
    ReturnReason("R27", "Trace Number Error"),
    ReturnReason("R28", "Routing Number Check Digit Error"),
    ReturnReason("R29", "Corporate Customer Advises Not Authorized"),
    ReturnReason("R30", "RDFI Not Participant in Check Truncation Program"),
    ReturnReason("R31", "Permissible Return Entry (CCD and CTX only)"),
    ReturnReason("R32", "RDFI Non-Settlement"),
    ReturnReason("R33", "Return of XCK Entry"),
    ReturnReason("R34", "Limited Participation DFI"),
    ReturnReason("R35", "Return of Improper Debit Entry"),
    ReturnReason("R36", "Return of Improper Credit Entry"),
    ReturnReason("R37", "Source Document Presented for Payment"),
    ReturnReason("R38", "Stop Payment on Source Document"),
    ReturnReason("R39", "Improper Source Document/Source Document Presented for Payment"),
    ReturnReason("R40", "Return of ENR Entry by Federal Government Agency"),
    ReturnReason("R41", "Invalid Transaction Code (ENR)"),
    ReturnReason("R42", "Routing Number/Check Digit Error (ENR)"),
    ReturnReason("R43", "Invalid DFI Account Number (ENR)"),
    ReturnReason("R44", "Invalid Individual ID Number/Identification Number (ENR)"),
    ReturnReason("R45", "Invalid Individual Name/Company Name (ENR)"),
    ReturnReason("R46", "Invalid Representative Payee Indicator (ENR)"),
    ReturnReason("R47", "Duplicate Enrollment (ENR)"),
    ReturnReason("R50", "State Law Affecting RCK Acceptance"),
    ReturnReason("R51", "Item Related to RCK Entry is Ineligible or RCK Entry is Improper"),
    ReturnReason("R52", "Stop Payment on Item Related to RCK Entry"),
    ReturnReason("R53", "Item and RCK Entry Presented for Payment"),
    ReturnReason("R61", "Misrouted Return", kind=_DISHONORED),
    ReturnReason("R62", "Return of Erroneous or Reversing Debit", kind=_DISHONORED),
    ReturnReason("R67", "Duplicate Return", kind=_DISHONORED),
    ReturnReason("R68", "Untimely Return", kind=_DISHONORED),
    ReturnReason("R69", "Field Error(s)", kind=_DISHONORED),
    ReturnReason("R70", "Permissible Return Entry Not Accepted/Return Not Requested by ODFI",
                 kind=_DISHONORED),
    ReturnReason("R71", "Misrouted Dishonored Return", kind=_CONTESTED),
    ReturnReason("R72", "Untimely Dishonored Return", kind=_CONTESTED),
    ReturnReason("R73", "Timely Original Return", kind=_CONTESTED),
    ReturnReason("R74", "Corrected Return", kind=_CONTESTED),
    ReturnReason("R75", "Return Not a Duplicate", kind=_CONTESTED),
    ReturnReason("R76", "No Errors Found", kind=_CONTESTED),
    ReturnReason("R77", "Non-Acceptance of R62 Dishonored Return", kind=_CONTESTED),
    ReturnReason("R80", "IAT Entry Coding Error"),
    ReturnReason("R81", "Non-Participant in IAT Program"),
    ReturnReason("R82", "Invalid Foreign Receiving DFI Identification"),
    ReturnReason("R83", "Foreign Receiving DFI Unable to Settle"),
    ReturnReason("R84", "Entry Not Processed by Gateway"),
    ReturnReason("R85", "Incorrectly Coded Outbound International Payment"),
)}
# fmt: on


CORRECTED_DATA_WIDTH: Final = 29  # a notification's corrected data field (addenda 98, positions 36-64)


@dataclass(frozen=True)
class Part:
    """One value inside a notification's corrected data field."""

    name: str
    start: int  # 1-based, within the corrected data
    width: int


@dataclass(frozen=True)
class ChangeReason:
    code: str
    title: str
    corrected: tuple[Part, ...]  # empty: the corrected data is free text
    refused: bool = False  # a refused COR code (the ODFI refuses the notification)


_ROUTING = Part("routing number", 1, 9)
_ACCOUNT = Part("account number", 1, 17)
_TRANSACTION = Part("transaction code", 1, 2)

# fmt: off
CHANGE_REASONS: Final = {reason.code: reason for reason in (
    ChangeReason("C01", "Incorrect DFI Account Number", (_ACCOUNT,)),
    ChangeReason("C02", "Incorrect Routing Number", (_ROUTING,)),
    ChangeReason("C03", "Incorrect Routing Number and Incorrect DFI Account Number",
                 (_ROUTING, Part("account number", 13, 17))),
    ChangeReason("C04", "Incorrect Individual Name/Receiving Company Name", (Part("name", 1, 22),)),
    ChangeReason("C05", "Incorrect Transaction Code", (_TRANSACTION,)),
    ChangeReason("C06", "Incorrect DFI Account Number and Incorrect Transaction Code",
                 (_ACCOUNT, Part("transaction code", 21, 2))),
    ChangeReason("C07", "Incorrect Routing Number, Incorrect DFI Account Number, and Incorrect "
                        "Transaction Code",
                 (_ROUTING, Part("account number", 10, 17), Part("transaction code", 27, 2))),
    ChangeReason("C08", "Incorrect Receiving DFI Identification (IAT only)",
                 (Part("receiving DFI identification", 1, 29),)),
    ChangeReason("C09", "Incorrect Individual Identification Number",
                 (Part("individual identification number", 1, 22),)),
    ChangeReason("C10", "Incorrect Company Name", (Part("company name", 1, 16),)),
    ChangeReason("C11", "Incorrect Company Identification", (Part("company identification", 1, 10),)),
    ChangeReason("C12", "Incorrect Company Name and Company Identification",
                 (Part("company name", 1, 16), Part("company identification", 17, 10))),
    ChangeReason("C13", "Addenda Format Error", ()),
    ChangeReason("C14", "Incorrect SEC Code for Outbound International Payment",
                 (Part("SEC code", 1, 3),)),
    ChangeReason("C61", "Misrouted Notification of Change", (), refused=True),
    ChangeReason("C62", "Incorrect Trace Number", (), refused=True),
    ChangeReason("C63", "Incorrect Company Identification Number", (), refused=True),
    ChangeReason("C64", "Incorrect Individual Identification Number/Identification Number", (),
                 refused=True),
    ChangeReason("C65", "Incorrectly Formatted Corrected Data", (), refused=True),
    ChangeReason("C66", "Incorrect Discretionary Data", (), refused=True),
    ChangeReason("C67", "Routing Number Not From Original Entry Detail Record", (), refused=True),
    ChangeReason("C68", "DFI Account Number Not From Original Entry Detail Record", (), refused=True),
    ChangeReason("C69", "Incorrect Transaction Code", (), refused=True),
)}
# fmt: on


def return_codes(kind: ReturnKind) -> tuple[str, ...]:
    return tuple(code for code, reason in RETURN_REASONS.items() if reason.kind is kind)


def change_codes(*, refused: bool) -> tuple[str, ...]:
    return tuple(code for code, reason in CHANGE_REASONS.items() if reason.refused is refused)


def decode_corrected_data(change_code: str, corrected_data: str) -> dict[str, str]:
    """The corrected values a notification carries, by name; free text for a code without a format."""
    reason = CHANGE_REASONS.get(change_code)
    if reason is None or not reason.corrected:
        return {"corrected data": corrected_data.strip()} if corrected_data.strip() else {}
    padded = corrected_data.ljust(CORRECTED_DATA_WIDTH)
    return {
        part.name: padded[part.start - 1 : part.start - 1 + part.width].strip() for part in reason.corrected
    }


def encode_corrected_data(change_code: str, values: Mapping[str, str]) -> str:
    """The corrected data field carrying ``values`` (by part name) where the change code puts them.

    The inverse of `decode_corrected_data`; without the field's right padding, as the model keeps it.
    Raises ValueError for a code without a format, a part missing or unknown, or a value too long.
    """
    reason = CHANGE_REASONS.get(change_code)
    if reason is None or not reason.corrected:
        raise ValueError(f"change code {change_code!r} has no corrected data format")
    names = {part.name for part in reason.corrected}
    if set(values) != names:
        raise ValueError(f"{change_code} carries {sorted(names)}, got {sorted(values)}")
    field = [" "] * CORRECTED_DATA_WIDTH
    for part in reason.corrected:
        value = values[part.name]
        if len(value) > part.width:
            raise ValueError(f"{change_code} {part.name} is longer than {part.width} characters")
        field[part.start - 1 : part.start - 1 + len(value)] = value
    return "".join(field).rstrip()
