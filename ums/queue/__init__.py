"""The delivery core: the one owner of a delivery's lifecycle.

Every delivery row is built and inserted by :mod:`ums.queue.rows`, every CDR
row by :mod:`ums.queue.records`, every Message-ID by
:mod:`ums.queue.message_ids`; a delivery's states and their transitions are
:class:`ums.queue.states.DeliveryState`, its priority class
:class:`ums.queue.lanes.Lane`. EPS dispatch, one-off sends (``ums.outbox``),
campaign expansion, fallback and PASS call these; nothing else writes the
``deliveries`` or ``cdr`` tables. Keeping one owner is what lets a change to
the lifecycle touch one place (tests/unit/test_delivery_core.py checks it).

The package imports no service and nothing that imports one.
"""
