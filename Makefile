# Set-up and test entry points. `make demo` and `make test` are the README's two commands:
# each one installs what is missing first, so a fresh machine needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup binaries demo test generate clean

setup: $(STAMP) binaries

binaries:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v amtool >/dev/null && \
	 { command -v alertmanager || command -v prometheus-alertmanager; } >/dev/null || { \
	  echo "installing prometheus and prometheus-alertmanager (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus prometheus-alertmanager >/dev/null; }
	@command -v victoria-metrics >/dev/null && command -v vmalert >/dev/null || { \
	  echo "installing victoria-metrics (Debian package: victoria-metrics, vmalert; portability tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends victoria-metrics >/dev/null; }
	@command -v chromium >/dev/null || command -v chromium-headless-shell >/dev/null || { \
	  echo "installing chromium (Debian package; the HTML report is tested in a headless browser)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

demo: setup
	$(BIN)/inferwatch demo

test: setup
	$(BIN)/pytest -q

generate: setup
	$(BIN)/inferwatch generate --output rules

clean:
	rm -rf $(VENV) .pytest_cache
