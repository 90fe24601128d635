# The two commands of the README. Both install what they need first.
PYTEST_ARGS ?=

.PHONY: run test
run:
	scripts/bootstrap run
	.venv/bin/ums init
	exec .venv/bin/ums run

test:
	scripts/bootstrap test
	.venv/bin/pytest $(PYTEST_ARGS)
