"""PASS — the public access scheduling server: the delivery queue, reserved
sending, throttling, channels, CDR and crash recovery.

``pass`` is a keyword: inside this package use relative imports only; elsewhere
load it by dotted name with importlib.
"""
