"""``paypipe ach show``: a bank's NACHA file decoded for people and as JSON; refusals in one line."""

import json
from pathlib import Path

import pytest

from paypipe import cli
from paypipe.errors import EXIT_OK, EXIT_USAGE
from paypipe.ops.ach_show import dollars, mask

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nacha"


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["ach", "show", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_returns_are_shown_with_reason_titles_dollars_and_masked_accounts(capsys) -> None:
    code, out, err = show(capsys, str(FIXTURES / "returns_blank_effective_date.ach"))
    assert (code, err) == (EXIT_OK, "")
    assert "return R03 No Account/Unable to Locate Account (original trace 091000010000001)" in out
    assert "date of death 2026-02-27" in out
    assert "$500.00" in out and "$698.45" in out and "effective -" in out
    assert "account *****6789" in out and "account 123456789" not in out


def test_unmasked_shows_whole_account_numbers(capsys) -> None:
    _, out, _ = show(capsys, str(FIXTURES / "noc_corrections.ach"), "--unmasked")
    assert "account 123456789 " in out
    assert "NOC C03 Incorrect Routing Number and Incorrect DFI Account Number" in out
    assert "routing number 011000015, account number 000222333444" in out


def test_json_document_carries_returns_and_corrections(capsys) -> None:
    _, out, _ = show(capsys, str(FIXTURES / "returns_blank_effective_date.ach"), "--json")
    (batch,) = json.loads(out)["batches"]
    assert (batch["sec_code"], batch["service_class"]) == ("PPD", 220)
    first = batch["entries"][0]
    assert (first["transaction_code"], first["amount_cents"], first["trace_number"]) == (
        21,
        12_345,
        "071000010000001",
    )
    assert first["return"]["code"] == "R03" and first["return"]["original_trace_number"] == "091000010000001"
    assert first["return"]["stops_credits"] is True and first["account"] == "*****6789"

    _, out, _ = show(capsys, str(FIXTURES / "noc_corrections.ach"), "--json")
    corrections = [entry["correction"] for entry in json.loads(out)["batches"][0]["entries"]]
    assert corrections[0]["code"] == "C01"
    assert corrections[0]["corrected_data"] == {"account number": "*****4321"}
    assert corrections[2]["corrected_data"] == {"transaction code": "32"}


def test_refused_nocs_and_dishonored_returns_are_named(capsys) -> None:
    _, out, _ = show(capsys, str(FIXTURES / "refused_noc.ach"))
    assert "refused NOC C65 Incorrectly Formatted Corrected Data of C01" in out
    _, out, _ = show(capsys, str(FIXTURES / "dishonored_and_contested_returns.ach"))
    assert "dishonored return R69 Field Error(s)" in out
    assert "contested dishonored return R73 Timely Original Return" in out


def test_many_addenda_and_raw_addenda_are_listed(capsys) -> None:
    _, out, _ = show(capsys, str(FIXTURES / "ctx_many_addenda.ach"))
    assert out.count("addenda: RMR*IV*INV") == 25
    code, out, _ = show(capsys, str(FIXTURES / "lenient_pos_addenda_02.ach"))
    assert code == EXIT_OK and "addenda: TERM0001 MAIN ST STORE" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            [str(FIXTURES / "malformed_return_date_of_death.ach")],
            "line 6 (return addenda) field date of death: expected a YYMMDD date, got '260231'",
        ),
        (
            ["--strict", str(FIXTURES / "lenient_pos_addenda_02.ach")],
            "line 4 (addenda) field addenda type code",
        ),
        ([str(FIXTURES / "no-such-file.ach")], "cannot read"),
    ],
)
def test_a_refused_file_is_one_line_and_exit_2(capsys, argv: list[str], expected: str) -> None:
    code, out, err = show(capsys, *argv)
    assert code == EXIT_USAGE and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err
    assert err.startswith("paypipe ach: error: ")


def test_masking_and_dollars() -> None:
    assert mask("123456789", unmasked=False) == "*****6789"
    assert mask("123", unmasked=False) == "123"
    assert mask("123456789", unmasked=True) == "123456789"
    assert dollars(0) == "$0.00" and dollars(123_456_789) == "$1,234,567.89"
