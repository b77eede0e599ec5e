# Two commands do all the set-up on a fresh machine with Python 3.10+ and Java 17+:
#   make train   install into .venv, get MNIST, ingest it to Parquet, train the tutorial on local[*]
#   make test    install into .venv (with test extras), lint, and run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

# MNIST: $MNIST_DIR if set, else the shared copy beside the repo, else downloaded into data/raw.
MNIST_DIR ?= $(if $(wildcard ../shared/data/mnist/train-images-idx3-ubyte.gz),$(abspath ../shared/data/mnist),$(CURDIR)/data/raw)
export MNIST_DIR
# Spark's settings and its log4j2 configuration (console at WARN) from conf/, for spark-submit too.
SPARK_CONF_DIR ?= $(CURDIR)/conf
export SPARK_CONF_DIR
DATA   ?= data/mnist
RUN    ?= runs/tutorial
MASTER ?= local[*]
PYTEST_ARGS ?=
# what ruff checks and formats; mypy and the function-length check read dist_mnist/ only
RUFF_PATHS := dist_mnist tests benchmarks jobs

.PHONY: train lint format test test-fast test-compose image-offline check-env dist bench clean

check-env:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null || \
	  { echo "dist-mnist needs Python 3.10 or newer: install python3.11 (or run make PYTHON=python3.11)"; exit 1; }
	@command -v java >/dev/null 2>&1 || [ -n "$$JAVA_HOME" ] || \
	  { echo "Java not found: Spark 4 needs Java 17 or 21 (apt-get install openjdk-17-jre-headless)"; exit 1; }

$(VENV)/.installed: pyproject.toml | check-env
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# The venv's Spark reads this repo's conf/ when SPARK_CONF_DIR is unset, as a Spark
	@# installation reads its own conf/: a bare `spark-submit jobs/train.py` is then as quiet as make's.
	spark_home="$$($(BIN)/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"; \
	  if [ -L "$$spark_home/conf" ] || [ ! -e "$$spark_home/conf" ]; then ln -sfn "$(CURDIR)/conf" "$$spark_home/conf"; \
	  else echo "note: $$spark_home/conf exists; export SPARK_CONF_DIR=$(CURDIR)/conf for spark-submit"; fi
	touch $@

$(MNIST_DIR)/train-images-idx3-ubyte.gz: | $(VENV)/.installed
	$(BIN)/dist-mnist download --out $(MNIST_DIR)

$(DATA)/metadata.json: | $(VENV)/.installed $(MNIST_DIR)/train-images-idx3-ubyte.gz
	$(BIN)/dist-mnist ingest --source $(MNIST_DIR) --out $(DATA) --partitions 2 --seed 123

# --overwrite replaces the files train writes in $(RUN) and keeps the rest (model.onnx, notes)
train: $(VENV)/.installed $(DATA)/metadata.json
	$(BIN)/spark-submit --master '$(MASTER)' jobs/train.py --data $(DATA) --out $(RUN) --overwrite
	$(BIN)/dist-mnist report $(RUN) --data $(DATA)

# ruff (lint, then format) over all the Python, and mypy on dist_mnist, with pyproject.toml's
# settings; no function in dist_mnist over 60 lines. The same ruff and function-length checks
# before each commit, offline (.pre-commit-config.yaml): `.venv/bin/pre-commit install`, once.
lint: $(VENV)/.installed
	$(BIN)/ruff check $(RUFF_PATHS)
	$(BIN)/ruff format --check $(RUFF_PATHS)
	$(BIN)/mypy dist_mnist
	$(BIN)/python .ci/function_lengths.py dist_mnist --max 60

# Rewrite what lint would refuse and ruff can mend: the format, then the safe fixes.
format: $(VENV)/.installed
	$(BIN)/ruff format $(RUFF_PATHS)
	$(BIN)/ruff check --fix $(RUFF_PATHS)

# Lint first, then two pytest processes: a Spark Connect client cannot share its process with
# classic sessions.
test: $(VENV)/.installed lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/connect $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit -q -m "not slow"

# The compose mini-cluster's tests alone (they build the image offline first; need a Docker engine).
test-compose: $(VENV)/.installed
	$(BIN)/python -m pytest tests/compose $(PYTEST_ARGS)

# The project image without any container registry: debootstrapped Debian + wheelhouse (root).
image-offline:
	docker/build-offline.sh

dist: $(VENV)/.installed
	$(BIN)/python -m dist_mnist.spark.packaging dist/dist_mnist.zip

bench: $(VENV)/.installed $(DATA)/metadata.json
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py --data $(DATA) --mnist-dir $(MNIST_DIR)

clean:
	rm -rf $(VENV) dist build *.egg-info
