# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv when it is missing and installs what is needed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test venv data clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test,serve,export]'
	touch $@

venv: $(VENV)/.installed

# Fashion-MNIST from Debian (the real data for training here).
data:
	@if [ ! -e $(FMNIST)/train-images-idx3-ubyte.gz ] && [ ! -e $(FMNIST)/train-images-idx3-ubyte ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; fi; \
	fi

demo: venv data
	$(VENV)/bin/convzoo speedrun lenet5-91 --seeds 1 --out runs/demo

test: venv data
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
