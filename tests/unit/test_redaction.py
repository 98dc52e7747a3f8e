import json

import pytest

from paypipe.redaction import redact, redact_json_text


def test_text_without_card_numbers_is_kept_byte_for_byte():
    text = '{"b": 1,  "a": "4111 is not a card", "amount_cents": 1234567812345678}'
    assert redact_json_text(text) == text


@pytest.mark.parametrize(
    "value",
    [4111111111111111, 4111111111111111.0, "4111111111111111", "card 4111-1111-1111-1111 on file"],
)
def test_card_numbers_are_masked_wherever_they_sit_in_json(value):
    text = json.dumps({"detail": {"x": [value], "4111111111111111": True}})
    redacted = redact_json_text(text)
    assert "4111" not in redacted.replace("[PAN]", "")
    document = json.loads(redacted)
    assert "[PAN]" in document["detail"]["x"][0]
    assert document["detail"]["[PAN]"] is True


def test_text_that_is_not_json_is_masked_as_text():
    assert redact_json_text("{broken 4111111111111111") == "{broken [PAN]"


def test_redact_masks_card_numbers_in_numbers_but_keeps_other_numbers():
    assert redact({"a": 4111111111111111, "b": 1234567812345678, "c": 12.5, "d": True}) == {
        "a": "[PAN]",
        "b": 1234567812345678,
        "c": 12.5,
        "d": True,
    }


def test_parked_bodies_mask_cvvs_and_account_numbers_by_key_and_keep_the_rest():
    text = json.dumps(
        {
            "detail": {
                "data": {
                    "card": {"number": "4111111111111111", "cvv": "123", "exp_month": 12},
                    "payee": {"account_number": "0205030969", "routing_number": "021000021"},
                    "CVV": 123,
                    "none": {"cvv": None},
                }
            }
        }
    )
    data = json.loads(redact_json_text(text))["detail"]["data"]
    assert data["card"] == {"number": "[PAN]", "cvv": "[REDACTED]", "exp_month": 12}
    assert data["payee"] == {"account_number": "[REDACTED]", "routing_number": "021000021"}
    assert data["CVV"] == "[REDACTED]" and data["none"] == {"cvv": None}


def test_a_body_with_an_account_number_but_no_card_number_is_still_masked():
    text = '{"data": {"payee": {"account_number": "0205030969"}}}'
    assert "0205030969" not in redact_json_text(text)
    assert json.loads(redact_json_text(text))["data"]["payee"]["account_number"] == "[REDACTED]"
