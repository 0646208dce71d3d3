# Anim4D: `make demo` and `make test` are all a new user needs (see README.md).
# Both create or reuse .venv and install only when pyproject.toml changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install wheels demo test fuzz lint addon bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else \
		"anim4d needs Python 3.11 (bpy 5.0 is built for it); found %d.%d at $(PYTHON). \
		Run: make PYTHON=/path/to/python3.11" % v)'
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "could not create $(VENV): on \
		Debian/Ubuntu run 'sudo apt-get install python3.11-venv' and try again" >&2; exit 1; }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,blender,ray]'
	@touch $@

install: $(STAMP)

# the pyzmq wheels the add-on bundles (downloaded once; the add-on tests build with them offline)
wheels: install
	$(BIN)/python -m blender_addon.build --fetch-wheels

demo: install
	$(BIN)/anim4d demo --out out/demo

lint: install
	$(BIN)/ruff check .

test: lint wheels
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Fresh random seeds (printed; replay one with ANIM4D_SEED=<seed> and add it to
# tests/regression_seeds.txt) and large hypothesis profiles, on request only; the server fuzz
# then runs again against a gateway in Ray mode until 10,000 malformed messages were sent.
fuzz: install
	ANIM4D_FUZZ=$${ANIM4D_FUZZ:-200} $(BIN)/python -m pytest tests/render/test_raster.py tests/server/test_fuzz.py -p no:randomly
	ANIM4D_FUZZ=$${ANIM4D_FUZZ:-200} ANIM4D_FUZZ_EXECUTOR=ray ANIM4D_FUZZ_MESSAGES=10000 \
		$(BIN)/python -m pytest tests/server/test_fuzz.py -p no:randomly -s \
		-k test_malformed_messages_get_errors_and_jobs_run_on

addon: install
	$(BIN)/python -m blender_addon.build

bench: install
	$(BIN)/python bench/lib/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) dist build out .pytest_cache .ruff_cache
