"""What the pipeline tells its operators: the metric catalogue, the facts its events carry."""
