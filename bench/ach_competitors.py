"""Writes and parses the benchmark ACH file with a third-party library; run in its own venv.

Usage: python ach_competitors.py <library> <input.json> <output.ach>. Prints
{"write_s": ..., "parse_s": ...} (minimum over the repeats). Imports nothing from paypipe.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any


def achkit_write(spec: dict[str, Any]) -> str:
    import achkit  # type: ignore[import-not-found]

    created = datetime.fromisoformat(spec["created"])
    ach = achkit.AchFile.create(
        origin_dfi=spec["odfi"],
        company_id=spec["company_id"],
        destination_routing=spec["odfi"],
        destination_name=spec["destination_name"],
        origin_name=spec["origin_name"],
        creation_date=created,
    )
    batch = ach.batch("PPD", spec["description"], spec["effective"], company_name=spec["company_name"])
    for payment_id, name, routing, account, cents in spec["payouts"]:
        batch.credit(name, routing, account, cents, id_number=payment_id)
    return str(ach.render())


def achkit_parse(text: str) -> object:
    import achkit

    return achkit.parse(text)


def carta_write(spec: dict[str, Any]) -> str:
    from ach.builder import AchFile  # type: ignore[import-not-found]

    settings = {
        "immediate_dest": spec["odfi"],
        "immediate_org": spec["odfi"],
        "immediate_dest_name": spec["destination_name"],
        "immediate_org_name": spec["origin_name"],
        "company_id": spec["company_id"],
    }
    ach = AchFile("A", settings)
    entries = [
        {
            "type": "22",
            "routing_number": routing,
            "account_number": account,
            "amount": f"{cents // 100}.{cents % 100:02d}",
            "name": name,
            "id_number": payment_id,
        }
        for payment_id, name, routing, account, cents in spec["payouts"]
    ]
    ach.add_batch(
        "PPD", entries, credits=True, debits=False, eff_ent_date=datetime.fromisoformat(spec["effective"])
    )
    return str(ach.render_to_string())


def carta_parse(text: str) -> object:
    from ach.parser import Parser  # type: ignore[import-not-found]

    return Parser(text).as_dict()


LIBRARIES = {"achkit": (achkit_write, achkit_parse), "carta-ach": (carta_write, carta_parse),
             "ach": (carta_write, carta_parse)}  # fmt: skip


def main() -> None:
    library, source, target = sys.argv[1:4]
    with open(source) as handle:
        spec = json.load(handle)
    write, parse = LIBRARIES[library]
    write_s = parse_s = float("inf")
    text = ""
    for _ in range(spec["repeats"]):
        start = time.process_time()
        text = write(spec)
        write_s = min(write_s, time.process_time() - start)
    with open(target, "w") as handle:
        handle.write(text)
    parsed: float | None = None
    try:
        for _ in range(spec["repeats"]):
            start = time.process_time()
            parse(text)
            parse_s = min(parse_s, time.process_time() - start)
        parsed = parse_s
    except Exception as error:  # a library that cannot read back what it wrote
        print(f"{library} parser failed: {type(error).__name__}: {error}", file=sys.stderr)
    print(json.dumps({"write_s": write_s, "parse_s": parsed}))


if __name__ == "__main__":
    main()
