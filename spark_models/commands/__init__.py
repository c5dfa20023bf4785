"""The ``spark-models`` subcommands, one module each."""
