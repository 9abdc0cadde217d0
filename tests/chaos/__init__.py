"""The chaos harness of issue 10: two API processes and two workers on embedded servers
started here, a steady mixed load from every kind of source, seeded faults, and a verdict
computed from the stores. Run it with `python -m tests.chaos --help` or `nox -s chaos`."""
