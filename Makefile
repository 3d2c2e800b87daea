# The two commands of README.md, and a few conveniences around them.
.PHONY: run test lint down

run:   ## the embedded local platform running the example flows end to end
	hack/run.sh

test:  ## the whole test suite, installing and starting everything it needs
	hack/test.sh

lint:
	hack/bootstrap.sh && .venv/bin/ruff check .

down:  ## stop the local platform, the test services and the cluster that `make run` / `make test` started
	-[ ! -x .venv/bin/lume ] || .venv/bin/lume down --state-dir .state/local
	-hack/services.sh down
	-hack/cluster.sh down
