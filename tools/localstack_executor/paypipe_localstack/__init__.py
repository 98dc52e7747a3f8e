"""LocalStack plugins that let the paypipe stack run on a host without a Docker engine."""
