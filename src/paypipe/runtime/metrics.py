"""Metrics as CloudWatch embedded metric format (EMF) documents, built by Powertools Metrics.

Steps and the consumer runtime ``record`` facts (``paypipe.observability.facts``) during an
invocation; the Lambda entry (``paypipe.runtime.entry``) calls ``flush`` once at its end, which
writes one EMF document per dimension set to the log stream (stdout in Lambda, where CloudWatch
Logs extracts the metrics; the embedded run's log file). Every metric and its dimension names
must be in ``paypipe.observability.catalogue``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from paypipe.observability.catalogue import CATALOGUE, NAMESPACE
from paypipe.observability.facts import Fact
from paypipe.runtime import logging as log_setup

MAX_VALUES_PER_DOCUMENT = 99  # Powertools prints on its own at 100; we flush before

_pending: list[Fact] = []


class UnknownMetricError(ValueError):
    """A metric or dimension set the catalogue does not list."""


def _check(fact: Fact) -> Fact:
    entry = CATALOGUE.get(fact.metric)
    if entry is None:
        raise UnknownMetricError(f"{fact.metric} is not in the metric catalogue")
    if sorted(entry.dimensions) != [name for name, _ in fact.dimensions]:
        raise UnknownMetricError(f"{fact.metric} takes dimensions {entry.dimensions}")
    return fact


def record(facts: Iterable[Fact]) -> None:
    _pending.extend(_check(fact) for fact in facts)


def emit(name: str, value: float, **dimensions: str) -> None:
    record([Fact.of(name, value, **dimensions)])


def pending() -> list[Fact]:
    return list(_pending)


def _provider(dimensions: tuple[tuple[str, str], ...]) -> AmazonCloudWatchEMFProvider:
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE)
    provider.service = ""  # no service dimension: the catalogue's dimensions only
    for name, value in dimensions:
        provider.add_dimension(name, value)
    return provider


def documents(facts: Iterable[Fact]) -> list[dict[str, Any]]:
    """One EMF document per dimension set (more when a metric has many values)."""
    groups: dict[tuple[tuple[str, str], ...], list[Fact]] = {}
    for fact in facts:
        groups.setdefault(fact.dimensions, []).append(fact)
    docs: list[dict[str, Any]] = []
    for dimensions, group in groups.items():
        provider, count = _provider(dimensions), 0
        for fact in group:
            if count == MAX_VALUES_PER_DOCUMENT:
                docs.append(dict(provider.serialize_metric_set()))
                provider, count = _provider(dimensions), 0
            provider.add_metric(name=fact.metric, unit=CATALOGUE[fact.metric].unit, value=fact.value)
            count += 1
        docs.append(dict(provider.serialize_metric_set()))
    return docs


def flush() -> int:
    """Write the pending facts as EMF documents to the log stream; the number of documents."""
    facts = list(_pending)
    _pending.clear()
    docs = documents(facts)
    for doc in docs:
        log_setup.write_line(json.dumps(doc, separators=(",", ":")))
    return len(docs)
