"""The demo: a synthetic ride-cancellation stream (``data``) and the end-of-run report (``report``).

Neither is needed to run scorer; they exist so that ``make demo`` can show the whole job on a laptop.
"""
