"""Inspect and replay a paypipe stack's DLQs (same as ``paypipe dlq``).

scripts/replay_dlq.py list --stack paypipe-dev
scripts/replay_dlq.py show FraudDLQ --stack paypipe-dev
scripts/replay_dlq.py replay FraudDLQ --stack paypipe-dev --dry-run
"""

import sys

from paypipe.cli import main

if __name__ == "__main__":
    sys.exit(main(["dlq", *sys.argv[1:]]))
