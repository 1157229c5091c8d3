"""The ground floor: types and rules every layer shares, importing nothing else of transferlab.

``errors`` (the user-error type and its one formatter), ``data_config`` (the preprocessing a backbone expects),
``tasks`` (task descriptions and missing-label masks) and ``checks`` (the config rules, run once at startup).
"""
