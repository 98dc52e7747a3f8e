"""NACHA writer and parser throughput (100,000 entries) against third-party ACH libraries.

Each library is installed, pinned, in its own throwaway venv under ``.bench/venvs`` (never a
dependency of paypipe) and runs ``ach_competitors.py``. Its file only counts as "the same file"
if paypipe's strict parser accepts it and finds the same entries and totals as in ours.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from paypipe.domain import nacha
from paypipe.embedded.scenario import VALID_ROUTING_NUMBERS

REPO = Path(__file__).resolve().parents[1]
VENVS = REPO / ".bench" / "venvs"
COMPETITORS = {"achkit": "achkit==0.2.0", "carta-ach": "carta-ach==0.4.5", "ach": "ach==0.2"}
ENTRIES = 100_000
CREATED = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York
EFFECTIVE = date(2026, 12, 2)
ORIGINATOR = nacha.Originator(
    immediate_destination="011000015",
    immediate_destination_name="ODFI",
    immediate_origin="011000015",
    immediate_origin_name="PAYPIPE ESCROW",
    company_name="PAYPIPE ESCROW",
    company_id="1234567890",
    odfi_routing="01100001",
    company_entry_description="PAYOUT",
)


@dataclass(frozen=True)
class NachaResult:
    library: str
    write_eps: float | None
    parse_eps: float | None
    equivalent: str  # how its file compares with ours


def payouts(count: int = ENTRIES) -> list[nacha.Payout]:
    rng = random.Random(5)
    return [
        nacha.Payout(
            payment_id=f"P{index:09d}",
            amount_cents=rng.randrange(100, 500_000),
            payee_name=f"PAYEE {index:06d}",
            routing_number=rng.choice(VALID_ROUTING_NUMBERS),
            account_number=f"{rng.randrange(10**9, 10**10)}",
            account_type="checking",
            payee_type="individual",
        )
        for index in range(count)
    ]


def _min_cpu(work: object, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        result = work()  # type: ignore[operator]
        best = min(best, time.process_time() - start)
    return best, result


def ours(items: list[nacha.Payout], repeats: int) -> tuple[NachaResult, str]:
    write_s, text = _min_cpu(
        lambda: nacha.write(
            nacha.build_file(items, ORIGINATOR, effective_date=EFFECTIVE, created_at=CREATED)
        ),
        repeats,
    )
    parse_s, _ = _min_cpu(lambda: nacha.parse(str(text)), repeats)
    return NachaResult("paypipe.domain.nacha (build + write; strict parse)", len(items) / write_s,
                       len(items) / parse_s, "reference"), str(text)  # fmt: skip


def _venv_python(library: str) -> Path:
    python = VENVS / library / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / library)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603
            [str(python), "-m", "pip", "install", "--quiet", COMPETITORS[library]], check=True
        )
    return python


def _entries_view(file: nacha.AchFile) -> list[tuple[object, ...]]:
    return [
        (e.transaction_code, e.rdfi_routing + e.check_digit, e.dfi_account_number, e.amount_cents,
         e.individual_id_number, e.individual_name, e.trace_number)
        for batch in file.batches
        for e in batch.entries
    ]  # fmt: skip


def compare(reference: str, text: str) -> str:
    """Whether ``text`` is the same ACH file as ``reference`` for a bank (our strict parser decides)."""
    try:
        theirs = nacha.parse(text)
    except nacha.NachaParseError as error:
        return f"no: our strict parser rejects it ({error})"
    mine = nacha.parse(reference)
    if _entries_view(theirs) != _entries_view(mine):
        return "no: entries differ"
    if (theirs.control.total_credit_cents, theirs.control.entry_hash) != (
        mine.control.total_credit_cents,
        mine.control.entry_hash,
    ):
        return "no: file totals differ"
    same = sum(a == b for a, b in zip(reference.splitlines(), text.splitlines(), strict=False))
    return f"yes: same entries and totals; {same:,} of {len(reference.splitlines()):,} records byte-identical"


def competitor(
    library: str, items: list[nacha.Payout], reference: str, repeats: int, scratch: Path
) -> NachaResult:
    spec = {
        "odfi": ORIGINATOR.immediate_destination,
        "company_id": ORIGINATOR.company_id,
        "company_name": ORIGINATOR.company_name,
        "destination_name": ORIGINATOR.immediate_destination_name,
        "origin_name": ORIGINATOR.immediate_origin_name,
        "description": ORIGINATOR.company_entry_description,
        "created": CREATED.astimezone(nacha.EASTERN).replace(tzinfo=None).isoformat(),
        "effective": EFFECTIVE.isoformat(),
        "repeats": repeats,
        "payouts": [
            [p.payment_id, p.payee_name, p.routing_number, p.account_number, p.amount_cents] for p in items
        ],
    }
    source, target = scratch / f"{library}.json", scratch / f"{library}.ach"
    source.write_text(json.dumps(spec))
    try:
        python = _venv_python(library)
        out = subprocess.run(  # noqa: S603
            [
                str(python),
                str(Path(__file__).with_name("ach_competitors.py")),
                library,
                str(source),
                str(target),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as error:
        return NachaResult(f"{COMPETITORS[library]}", None, None, f"failed: {error.stderr.strip()[-200:]}")
    timings = json.loads(out.stdout.splitlines()[-1])
    write_eps = len(items) / timings["write_s"]
    parse_eps = len(items) / timings["parse_s"] if timings["parse_s"] else None
    return NachaResult(COMPETITORS[library], write_eps, parse_eps, compare(reference, target.read_text()))


def _best(seen: NachaResult | None, result: NachaResult) -> NachaResult:
    if seen is None:
        return result
    return replace(
        result,
        write_eps=max(seen.write_eps or 0, result.write_eps or 0) or None,
        parse_eps=max(seen.parse_eps or 0, result.parse_eps or 0) or None,
    )


def run(scratch: Path, repeats: int = 3, rounds: int = 3) -> list[NachaResult]:
    """Each library's best over ``rounds`` rounds, each round running every library in turn, so a
    burst of load from other work on the machine weighs on all of them alike."""
    items = payouts()
    best: dict[str, NachaResult] = {}
    for _ in range(rounds):
        mine, reference = ours(items, repeats)
        for result in [mine] + [competitor(name, items, reference, repeats, scratch) for name in COMPETITORS]:
            best[result.library] = _best(best.get(result.library), result)
    return list(best.values())
