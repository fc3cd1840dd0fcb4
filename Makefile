# Set-up is two commands: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install browser bench bench-knowledge clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel of this version lies on the machines; an open range pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,postgres,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tunewise demo

# Two workers (the machines have 2 cores), each taking whole test files: a file's fixtures are built once.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The report's browser test opens report.html in Debian's chromium: installed here when missing (as root,
# as on CI); elsewhere the test is skipped with a hint, unless TUNEWISE_REQUIRE_BROWSER=1 makes it fail.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed (apt-get install chromium): the report's browser test will be skipped"

bench: $(STAMP)
	$(BIN)/python bench/harness_overhead.py

bench-knowledge: $(STAMP)
	$(BIN)/python bench/knowledge.py

clean:
	rm -rf $(VENV) runs .pytest_cache
