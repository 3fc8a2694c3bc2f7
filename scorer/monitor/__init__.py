"""Closing the loop: input drift, live accuracy from delayed labels, and the joins that feed them.

The kernels here (``drift``, ``accuracy``, ``join``) are pure and bounded in memory; the streaming
glue that publishes their snapshots lives beside them and in ``scorer.retrain``.
"""
