import io
import json

from paypipe.runtime import logging as log_setup


def log_lines(**fields):
    stream = io.StringIO()
    log_setup.configure(stream=stream, level="DEBUG")
    log_setup.get_logger().info("event", **fields)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_pan_in_free_text_is_redacted():
    [line] = log_lines(detail="card 4111 1111 1111 1111 declined", nested={"note": ["5555555555554444"]})
    text = json.dumps(line)
    assert "4111 1111 1111 1111" not in text
    assert "[PAN]" in line["detail"]
    assert "5555555555554444" not in text
    assert "declined" in line["detail"]


def test_sensitive_keys_are_masked_whatever_their_value():
    [line] = log_lines(card={"number": "not-a-pan-but-secret", "cvv": "123", "last4": "1111"})
    assert line["card"]["number"] == "[REDACTED]"
    assert line["card"]["cvv"] == "[REDACTED]"
    assert line["card"]["last4"] == "1111"


def test_non_pan_numbers_survive():
    [line] = log_lines(amount_cents=123456, routing="011000015", order="1234567812345678")
    assert line["amount_cents"] == 123456 and line["routing"] == "011000015"
    assert line["order"] == "1234567812345678"  # fails Luhn: not a card number
