"""Journeys: multi-step omnichannel flows, one durable run per customer.

:mod:`.definitions` reads and checks a flow (JSON or XML), :mod:`.engine`
advances the runs that are due (PASS calls it on its clock), and
:mod:`ums.store.journeys` keeps the runs and their step history. Sends go
through the delivery core (:mod:`ums.queue`) like every other delivery.
The package imports no service.
"""
