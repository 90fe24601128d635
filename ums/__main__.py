"""``python -m ums``: the ``ums`` command (see :mod:`ums.cli`), for when the
console script is not on PATH or to measure start-up (``python -X importtime
-m ums status``)."""

from ums.cli import main

if __name__ == "__main__":
    main()
