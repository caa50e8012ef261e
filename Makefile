# Common tasks. `make demo` installs everything and runs the portal with demo data;
# `make test` runs the whole test suite (what CI runs).
PY := .venv/bin/python

.PHONY: install demo run test fuzz lint format migrate bench clean

install:
	bash scripts/bootstrap.sh

demo: install
	$(PY) scripts/demo_setup.py
	$(PY) scripts/run_local.py

run: install
	$(PY) scripts/run_local.py

migrate: install
	$(PY) manage.py migrate

test: install
	$(PY) manage.py makemigrations --check --dry-run
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$(PY) -m pytest --create-db -p no:cacheprovider --durations=25

# The schema fuzzing of the suite, with many more examples per operation, and every
# parameter at its edge values with DEBUG off and on (~40 min; prints what it ran).
fuzz: install
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-50} $(PY) -m pytest --create-db -p no:cacheprovider tests/security/test_fuzz.py

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# The benchmarks (bench/run.py; docs/BENCHMARKS.md): all, or one by name (make bench NAME=rows);
# BENCH_ARGS passes options (e.g. BENCH_ARGS="--rows 20000 --duration 3" for a smoke run).
bench: install
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(PY) bench/run.py $(NAME) $(BENCH_ARGS)

clean:
	rm -rf run staticfiles .pytest_cache .ruff_cache
