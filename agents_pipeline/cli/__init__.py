"""The ``agents-pipeline`` command line. Sub-commands import what they need lazily, so that
``agents-pipeline heartbeat`` stays a sub-300 ms call."""
