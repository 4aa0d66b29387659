"""The code the scripts of ``scripts/`` share, and the parts of the big generators.

The scripts run as ``python scripts/<name>.py``, so ``scripts/`` is on
``sys.path`` and they import these modules as ``scriptlib.<module>``. Each
script keeps its command line and what only it does; what two scripts need, or
what makes one script too long to read, lives here. Nothing here is part of the
``observatory`` package, which the scripts use for everything it already does
(crowns, geography codes, atomic files).
"""
