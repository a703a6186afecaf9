# citizen-voice: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-pyproject
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export CV_HOME := $(CURDIR)

.PHONY: setup system-packages demo test lint ui bench clean

# The virtualenv is cached: reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	cp pyproject.toml $(STAMP)

setup: $(STAMP) system-packages
	$(BIN)/citizen-voice prepare

# Debian packages: Chromium renders the bulletin's PDF (and screenshots it in the tests); Noto CJK
# gives it Chinese glyphs. Installed once, only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -q "Noto Sans CJK"; then \
		$(SUDO) apt-get install -y -q chromium fonts-noto-cjk >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium fonts-noto-cjk >/dev/null; }; \
	fi

demo: setup
	$(BIN)/citizen-voice demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/pytest -q

# Dagster UI on 127.0.0.1:3000, with the sandbox department systems served beside it.
ui: setup
	@test -f data/sandbox/manifest.json || $(BIN)/citizen-voice sandbox generate
	$(BIN)/citizen-voice sandbox serve & server=$$!; \
	trap "kill $$server" EXIT INT TERM; \
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -m orchestration.definitions

# Benchmark (never a pass/fail test): make bench SCALE=100000 [SEED=…] [STAGES=generate,ingest] [REPEAT=3];
# documented sizes 10000, 100000, 1000000.
# The city is cached per seed and size under data/bench/; results in bench/results/ (see bench/run.py).
bench: SCALE ?= 10000
bench: SEED ?= 12345
bench: setup
	$(BIN)/python -m bench --scale $(SCALE) --seed $(SEED) $(if $(STAGES),--stages $(STAGES)) $(if $(REPEAT),--repeat $(REPEAT))

clean:
	rm -rf data .dagster_home dbt_project/target dbt_project/logs
