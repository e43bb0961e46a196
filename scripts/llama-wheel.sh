#!/usr/bin/env bash
# Installs llama-cpp-python into the given interpreter's environment from a wheel we build ourselves.
#
# Why not `pip install llama-cpp-python`: there is no wheel on PyPI, and the default source build targets
# the build machine's CPU (GGML_NATIVE); on CPUs that advertise AMX it dies with SIGILL on real prompts.
# We build once with portable flags (override with LLAMA_CMAKE_ARGS for another CPU or a GPU) and cache
# the wheel keyed by version and flags, so a second set-up takes seconds, not minutes.
set -euo pipefail
python="$1"
version="${LLAMA_CPP_VERSION:-0.3.36}"
args="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_OPENMP=OFF}"
cache="${ONEBOX_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/onebox/wheels}"
key=$(printf '%s' "$version $args" | sha256sum | cut -c1-12)
dir="$cache/$key"

if ! ls "$dir"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $version (5-7 minutes on 2 cores) with: $args"
    tmp=$(mktemp -d "$cache.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$cache"; mktemp -d "$cache.tmp.XXXXXX"; })
    # --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and would hand back a native build.
    CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$python" -m pip wheel --no-cache-dir --no-deps -w "$tmp" "llama-cpp-python==$version"
    mkdir -p "$dir"
    mv "$tmp"/llama_cpp_python-*.whl "$dir"/
    rmdir "$tmp"
fi
"$python" -m pip install -q --no-deps --force-reinstall "$dir"/llama_cpp_python-"$version"-*.whl
# its runtime needs, without letting pip touch llama-cpp-python itself
"$python" -m pip install -q "numpy>=1.20" "typing-extensions>=4.5" "diskcache>=5.6.1" "jinja2>=2.11.3"
