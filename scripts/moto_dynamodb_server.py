"""DynamoDB for LocalStack in host mode: a moto server serving one request at a time, with the
project's moto patches.

moto's own server is threaded and its writes are not safe to run concurrently (a cancelled
TransactWriteItems puts back a copy of each table it touched, losing what another request wrote in
between); a load test on it saw the settlement balance one payout short of the journal. DynamoDB is strongly
consistent per item, so one request at a time is correct, only slower; the patched transactions
(``faster_transactions``) check every condition before writing and copy no table.

    python scripts/moto_dynamodb_server.py [--host 127.0.0.1] [--port 4567]
"""

from __future__ import annotations

import argparse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from paypipe.embedded.moto_patches import faster_transactions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4567)
    args = parser.parse_args()
    with faster_transactions():
        app = DomainDispatcherApplication(create_backend_app)
        run_simple(args.host, args.port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
