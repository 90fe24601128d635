# The two commands of the README. Both install what they need first.
PYTEST_ARGS ?=
# pytest-xdist workers: the suite is CPU-bound, so one per CPU (2 on CI); more
# starve the servers the tests talk to into timeouts. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2

.PHONY: run test
run:
	scripts/bootstrap run
	.venv/bin/ums init
	exec .venv/bin/ums run

test:
	scripts/bootstrap test
	.venv/bin/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)
