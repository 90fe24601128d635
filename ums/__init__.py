"""UMS: a unified messaging server suite (email, fax and voice).

The shared core lives here; the four services are the top-level packages
``was``, ``eps``, ``mas`` and ``pass``.
"""

__version__ = "0.1.0"
