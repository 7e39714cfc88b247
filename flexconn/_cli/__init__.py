"""The subcommands of the ``flexconn`` command line (see :mod:`flexconn.cli`)."""
