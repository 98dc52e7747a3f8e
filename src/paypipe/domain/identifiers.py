"""Identities a client chooses: the one id grammar, and canonical forms the client cannot vary.

Payment, customer, provider, tenant, dispute and request ids follow one grammar that every step
can carry: DynamoDB keys (``#`` separates key parts), S3 keys, EventBridge details and the NACHA
entry's individual id (letters and digits only, so an id must hold at least one: its first
character). IP addresses are parsed and written in one canonical form, so one address cannot pass
for several; velocity counts an IPv6 client by its /64 network, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

ID_MAX_LENGTH: Final = 64
ID_PATTERN: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{ID_MAX_LENGTH - 1}}}")
ID_GRAMMAR: Final = (
    f"1-{ID_MAX_LENGTH} characters: ASCII letters, digits, '.', '_', ':' or '-', "
    "starting with a letter or digit"
)
IPV6_VELOCITY_PREFIX: Final = 64


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def canonical_ip(text: str) -> str:
    """The address in its one canonical spelling; ValueError for anything else.

    IPv4 must be a dotted quad without leading zeros (``010.0.0.1`` is octal to some parsers and
    decimal to others, so it is refused rather than guessed); IPv6 is written as RFC 5952
    specifies, and an IPv4-mapped IPv6 address is the IPv4 address it maps. Zone ids,
    unspecified and multicast addresses are not client addresses.
    """
    if "%" in text:
        raise ValueError("an IP address with a zone id is not a client address")
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError("not an IPv4 dotted quad or an IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_multicast:
        raise ValueError("unspecified and multicast addresses are not client addresses")
    return address.compressed


def ip_velocity_key(canonical: str) -> str:
    """What velocity counts as one client: the IPv4 address, or the IPv6 address's /64."""
    address = ipaddress.ip_address(canonical)
    if isinstance(address, ipaddress.IPv4Address):
        return address.compressed
    return ipaddress.ip_network(f"{address}/{IPV6_VELOCITY_PREFIX}", strict=False).compressed
