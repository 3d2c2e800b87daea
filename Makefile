# The two commands of README.md, and a few conveniences around them.
.PHONY: run test lint down

run:   ## the embedded local platform running the example flows end to end
	hack/run.sh

test:  ## the whole test suite, installing and starting everything it needs
	hack/test.sh

lint:
	hack/bootstrap.sh && .venv/bin/ruff check .

down:  ## stop the local services and the cluster that `make test` / `make run` started
	-hack/services.sh down
	-hack/cluster.sh down
