# tempano's task runner: the README's commands are these targets.
.PHONY: setup test lint demo bench up clean

setup:          ## install everything: Debian packages, .venv with tempano, the temporal binary
	scripts/setup

lint: setup     ## ruff (lint + format check) and mypy (strict on tempano's packages)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m mypy blueprints workflows activities plugins api store

test: setup lint  ## the whole test suite against a real Temporal dev server
	.venv/bin/python -m pytest -q --durations=25

demo: setup     ## bring the stack up, install the example, print outputs and the UI link
	scripts/demo

up: setup       ## run the stack (Temporal dev server + worker + API) until Ctrl-C
	.venv/bin/tempano up

bench: setup    ## benchmarks (print their figures)
	for b in benchmarks/*.py; do .venv/bin/python $$b || exit 1; done

clean:
	rm -rf .venv build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
