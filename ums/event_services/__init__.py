"""EPS services: what a service is (:mod:`.definitions`, :mod:`.conditions`),
the live registry (:mod:`.registry`) and how an event becomes deliveries
(:mod:`.dispatch`).

In the core because EPS is not their only user: ``ums service`` (register,
stop, resume — and a resume dispatches the events a service held) and the
registry's HTTP routes act on them alike, and the core imports no service.
"""
