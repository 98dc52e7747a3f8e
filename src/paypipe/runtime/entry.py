"""Glue between Lambda entry points and the consumer runtime."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from paypipe.runtime import logging as log_setup
from paypipe.runtime import metrics
from paypipe.runtime.aws import client, int_setting, lazy_client, setting
from paypipe.runtime.consumer import Consumer, Observer, Route
from paypipe.runtime.publisher import EventPublisher

LambdaHandler = Callable[[Mapping[str, Any], Any], Any]


def build_consumer(step: str, routes: Mapping[str, Route], observer: Observer | None = None) -> Consumer:
    """A consumer wired to the bus, the step's DLQ and, when a route keeps idempotency records, the
    idempotency table from the environment (an ``observer`` instead of routes: see ``Consumer``)."""
    keeps_records = any(route.idempotent for route in routes.values())
    idempotency_table = os.environ.get("IDEMPOTENCY_TABLE", "") if keeps_records else ""
    store = (
        DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=client("dynamodb"))
        if idempotency_table
        else None
    )
    return Consumer(
        step,
        routes,
        publisher=publisher(step),
        sqs_client=lazy_client("sqs"),  # the DLQ's: parking is rare
        dlq_url=setting("DLQ_URL"),
        max_receive_count=int_setting("MAX_RECEIVE_COUNT", 5),
        idempotency_store=store,
        max_client_skew=timedelta(seconds=int_setting("CLIENT_CLOCK_SKEW_SECONDS", 300)),
        observer=observer,
    )


def publisher(step: str) -> EventPublisher:
    return EventPublisher(client("events"), setting("EVENT_BUS_NAME"), producer=step)


def lazy_handler(build: Callable[[], LambdaHandler]) -> LambdaHandler:
    """A Lambda handler that builds its dependencies on the first invocation and keeps them.

    The metrics recorded during an invocation are flushed once, at its end (failed or not)."""
    built: list[LambdaHandler] = []

    def handler(event: Mapping[str, Any], context: Any = None) -> Any:
        structlog.contextvars.clear_contextvars()
        if not built:
            log_setup.configure()
            try:
                built.append(build())
            finally:
                _end_start_up()
        try:
            return built[0](event, context)
        finally:
            metrics.flush()

    return handler


def _end_start_up() -> None:
    """Resume garbage collection once the handler is built (see ``paypipe.runtime.startup``)."""
    startup = sys.modules.get("paypipe.runtime.startup")  # imported by services/*/app.py alone
    if startup is not None:
        startup.finish()


def sqs_handler(build: Callable[[], Consumer]) -> LambdaHandler:
    return lazy_handler(lambda: build().handle)
