"""The stored-data scan's detectors: card numbers, CVVs and account numbers, each where it may not be."""

import json

from paypipe.embedded.data_scan import ALLOWED_IN_EVENT, Kind, Secrets, find_leaks, scan
from paypipe.events.models import CARDHOLDER_DATA_EVENT_TYPES

NONE = Secrets()
RUN = Secrets.build(pans=["4111111111111111"], cvvs=["123"], accounts=["0205030969", "12345"])


def kinds(text: str, secrets: Secrets = RUN, allowed: Kind = Kind.NONE) -> list[str]:
    return [leak.kind for leak in find_leaks("here", text, secrets, allowed)]


def test_card_numbers_known_or_card_shaped_but_not_structured_ids():
    assert kinds("card 4111 1111 1111 1111") == ["known card number"]
    assert kinds('{"n": "5555555555554444"}', NONE) == ["card-shaped digit run"]
    nacha_entry = (
        "6220110000150205030969       0000240473RUN110639000000JOSE MULLER SERVICES    0011000010000001"
    )
    assert kinds(nacha_entry, NONE) == []
    assert kinds('{"trace_number": "011000010000005", "at": 1795431417085}', NONE) == []


def test_hex_digests_hide_no_card_shaped_run_but_known_numbers_inside_them_count():
    digest = "d41d8cd9" + "4111111111111111" + "ecf8427e"  # a card-shaped run inside a digest
    assert kinds(f"Consumer._run_route#{digest}", NONE) == []
    assert kinds(f"Consumer._run_route#{digest}") == ["known card number"]
    assert kinds("pan=4111111111111111;", NONE) == ["card-shaped digit run"]


def test_cvvs_are_found_under_their_keys_whatever_the_value_but_masked_ones_are_not():
    assert kinds('{"card": {"cvv": "123"}}') == ["CVV"]
    assert kinds('{"CVC2": 9876}', NONE) == ["CVV"]  # not a known one: still a verification value
    assert kinds("card_verification_value=042", NONE) == ["CVV"]
    assert kinds('{"cvv": "[REDACTED]", "card_cvv": null}') == []
    assert kinds(json.dumps({"reason": json.dumps({"cvv": "123"})}), NONE) == [
        "CVV"
    ]  # escaped inside a string
    assert kinds('{"amount_cents": 123, "exp_month": 12}') == []  # the digits alone are no CVV


def test_account_numbers_known_or_under_their_key_but_not_last_four_or_short_ones():
    assert kinds('{"payee": {"account_number": "0205030969"}}') == [
        "account number field",
        "known account number",
    ]
    assert kinds("wrote 0205030969 to the file") == ["known account number"]
    assert kinds('{"account_last4": "0969", "amount": 10205030969}') == []  # glued digits are another number
    assert kinds('{"account_number": "[REDACTED]"}') == []
    assert RUN.accounts == frozenset({"0205030969"})  # 12345 is too short to scan for without noise
    assert kinds("limit 12345 cents") == []


def test_a_source_may_carry_what_it_is_allowed_and_nothing_else():
    request = (
        '{"card": {"number": "4111111111111111", "cvv": "123"}, "payee": {"account_number": "0205030969"}}'
    )
    assert kinds(request, allowed=Kind.ALL) == []
    assert kinds(request, allowed=Kind.PAN | Kind.ACCOUNT) == ["CVV"]
    assert kinds(request, allowed=Kind.ACCOUNT) == ["card-shaped digit run", "known card number", "CVV"]
    leaks = scan([("nacha", "0205030969", Kind.ACCOUNT), ("log", "0205030969", Kind.NONE)], RUN)
    assert [leak.where for leak in leaks] == ["log"]
    assert [str(leak) for leak in leaks] == ["log: known account number ...0969"]


def test_only_the_cardholder_data_events_may_carry_it_and_the_request_alone_a_cvv():
    assert set(ALLOWED_IN_EVENT) == CARDHOLDER_DATA_EVENT_TYPES
    assert ALLOWED_IN_EVENT["PaymentRequested"] == Kind.ALL
    assert Kind.CVV not in ALLOWED_IN_EVENT["PaymentValidated"]


def test_secrets_are_read_from_request_details_even_malformed_ones():
    details = [
        {
            "data": {
                "card": {"number": "4111111111111111", "cvv": "123"},
                "payee": {"account_number": "987654321"},
            }
        },
        {"data": {"card": "not a card", "payee": None}},
        {"data": None},
        json.loads('{"data": {"card": {"number": 4111}}}'),
    ]
    secrets = Secrets.of(details)
    assert (secrets.pans, secrets.cvvs, secrets.accounts) == (
        frozenset({"4111111111111111"}),
        frozenset({"123"}),
        frozenset({"987654321"}),
    )


def test_known_numbers_are_found_among_many_whatever_their_shape():
    pans = [f"4{index:015d}" for index in range(2000)] + ["378282246310005", "4111oddly1111"]
    accounts = [f"{index:010d}" for index in range(2000)] + ["GB29-NWBK-6016", "ab12cd34"]
    many = Secrets.build(pans=pans, cvvs=[], accounts=accounts)
    glued = "trace 99" + pans[1234] + "07 and 37828224 6310005"  # glued to digits; spaced
    assert [leak.masked for leak in find_leaks("here", glued, many, Kind.ACCOUNT)] == [
        "378282...0005",
        "400000...1234",
    ]
    assert kinds("note: 4111 oddly 1111", many, Kind.ACCOUNT) == ["known card number"]
    text = "paid 0000001999 then gb29-nwbk-6016, AB12CD34; not X0000000007 nor 00000000081"
    assert [leak.masked for leak in find_leaks("here", text, many, Kind.PAN)] == [
        "...1999",
        "...CD34",
        "...6016",
    ]
