"""The simulated receiving bank over S3: it reads the payout files the ACH cut writes and drops its
answer files (returns and notifications of change) where the ODFI would find them, when they are due.

What it has answered and what it still has to deliver is kept in memory: one instance per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Final

from paypipe.domain import nacha
from paypipe.domain.bank_simulator import BankSimulator
from paypipe.steps.ach_batch import PAYOUT_FILES_PREFIX
from paypipe.steps.ach_returns import INBOUND_PREFIX

# File id modifiers, in the order a day's answer files take them.
FILE_ID_MODIFIERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
NACHA_SUFFIX: Final = ".ach"


@dataclass(frozen=True)
class PlannedDelivery:
    delivery_date: date
    name: str  # the answer file's name, unique among the deliveries of its date
    file: nacha.AchFile


@dataclass
class SimulatedBank:
    """`BankSimulator` answering the payout files of a bucket.

    `s3` is a boto3-style client (list_objects_v2, get_object, put_object). With `kms_key_id`, answer
    files are written with SSE-KMS under that key, like the payout files they answer.
    """

    s3: Any
    simulator: BankSimulator = field(default_factory=BankSimulator)
    kms_key_id: str | None = None
    _answered: set[tuple[str, str]] = field(default_factory=set, init=False)
    _planned: list[PlannedDelivery] = field(default_factory=list, init=False)
    _files_per_date: dict[date, int] = field(default_factory=dict, init=False)

    @property
    def planned(self) -> tuple[PlannedDelivery, ...]:
        """The answer files not delivered yet, by delivery date and name."""
        return tuple(sorted(self._planned, key=lambda p: (p.delivery_date, p.name)))

    def answer_new_files(self, bucket: str, prefix: str = PAYOUT_FILES_PREFIX) -> list[str]:
        """Plan the answers to every payout file under `prefix` not answered yet; the keys answered.

        Files are taken in key order; a file whose entries all post is answered with nothing. Each
        answer file is named after the payout file's key (below `prefix`, "/" as "-") and takes the
        next file id modifier of its delivery date. Raises NachaParseError for a file the strict
        reader rejects (it stays unanswered).
        """
        answered = []
        for key in self._keys(bucket, prefix):
            if (bucket, key) in self._answered:
                continue
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            original = nacha.parse(body.decode("ascii"))
            name = key[len(prefix) : -len(NACHA_SUFFIX)].replace("/", "-")
            for delivery in self.simulator.deliveries(original):
                modifier = self._next_modifier(delivery.delivery_date)
                file = replace(delivery.file, header=replace(delivery.file.header, file_id_modifier=modifier))
                self._planned.append(PlannedDelivery(delivery.delivery_date, name, file))
            self._answered.add((bucket, key))
            answered.append(key)
        return answered

    def deliver_due(self, today: date, bucket: str, inbound_prefix: str = INBOUND_PREFIX) -> list[str]:
        """Put every planned answer file due by `today`; their keys, by delivery date and name.

        A file's key is `<inbound_prefix><yyyy>/<mm>/<dd>/<name>.ach` for its delivery date, also when
        it is put later than that (a day the caller skipped).
        """
        due = [planned for planned in self.planned if planned.delivery_date <= today]
        keys = []
        for planned in due:
            key = f"{inbound_prefix}{planned.delivery_date:%Y/%m/%d}/{planned.name}{NACHA_SUFFIX}"
            body = nacha.write(planned.file).encode("ascii")
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, **self._put_options())
            self._planned.remove(planned)
            keys.append(key)
        return keys

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        listed: list[str] = []
        request: dict[str, str] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self.s3.list_objects_v2(**request)
            listed += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(NACHA_SUFFIX)]
            if not page.get("IsTruncated"):
                break
            request["ContinuationToken"] = page["NextContinuationToken"]
        return sorted(listed)

    def _next_modifier(self, day: date) -> str:
        count = self._files_per_date.get(day, 0)
        if count >= len(FILE_ID_MODIFIERS):
            raise ValueError(f"more than {len(FILE_ID_MODIFIERS)} answer files for {day}")
        self._files_per_date[day] = count + 1
        return FILE_ID_MODIFIERS[count]

    def _put_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ContentType": "text/plain"}
        if self.kms_key_id is not None:
            options |= {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return options
