"""Helpers shared by the real-server tests: ports, workers as processes, topics, producers and collectors
(``stream``), own servers and fault injection (``faults``), fitted models and store snapshots (``store``)."""
