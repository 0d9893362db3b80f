#!/usr/bin/env bash
# The GPU path, proven (issue 22): on a machine with an NVIDIA GPU and this project's tree,
# install what it needs from PyPI wheels into a fresh venv, run the GPU tests and the
# backends / map-building benchmarks on CUDA, and print the figures; at most 8 minutes.
#
#     bash bench/gpu_check.sh            # from the repository root; figures on stdout
#
# What it installs: the package with its run-time dependencies (torch's default PyPI build,
# which is a CUDA build), pytest, onnx / onnxscript, onnxruntime-gpu (CUDA and TensorRT
# providers) and TensorRT 10 for torch's CUDA major (the Python API with the FP16 builder
# flag, which TensorRT 11 removed). A step that fails is reported and the script goes on;
# its exit code is the GPU tests'. Where $OUT is set (the device tool), the log goes there.
#
# Goals (issue 22): liploc-vit-s16 end to end <= 5 ms p50 at batch 1; map building >= 300
# scans/s.
set -u -o pipefail
cd "$(dirname "$0")/.."
BUDGET=${GPU_CHECK_BUDGET_S:-480}
START=$SECONDS
LOG=${OUT:-/tmp}/gpu_check.log
VENV=${GPU_CHECK_VENV:-/tmp/liploc-gpu-venv}
exec > >(tee "$LOG") 2>&1

left() { echo $((BUDGET - (SECONDS - START))); }
step() {  # step NAME SECONDS COMMAND...: run with a timeout within what is left
    local name=$1 want=$2
    shift 2
    local limit
    limit=$(left)
    ((want < limit)) && limit=$want
    if ((limit < 15)); then
        echo "== $name: skipped, the 8-minute budget is spent"
        return 124
    fi
    echo "== $name (up to ${limit} s, $((SECONDS - START)) s gone)"
    timeout "$limit" "$@"
    local rc=$?
    ((rc != 0)) && echo "== $name: exit $rc"
    return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || {
    echo "no NVIDIA GPU here: nothing to check"
    exit 1
}
grep -m1 "model name" /proc/cpuinfo

if [[ ! -x $VENV/bin/python ]]; then
    step "venv" 30 python3 -m venv "$VENV"
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip install --quiet --progress-bar off)
step "install the package (torch CUDA build, timm, faiss, ...)" 240 \
    "${PIP[@]}" -e . pytest onnx onnxscript
CUDA_MAJOR=$("$PY" -c "import torch; print((torch.version.cuda or '12').split('.')[0])")
step "install onnxruntime-gpu and TensorRT 10 (cu$CUDA_MAJOR)" 150 \
    "${PIP[@]}" "onnxruntime-gpu[cuda,cudnn]" "tensorrt-cu${CUDA_MAJOR}>=10,<11"
"$PY" - <<'EOF'
import importlib.util, torch
print(f"torch {torch.__version__} CUDA {torch.version.cuda}: {torch.cuda.get_device_name()}")
if importlib.util.find_spec("onnxruntime"):
    import onnxruntime as ort
    print(f"onnxruntime {ort.__version__}: {ort.get_available_providers()}")
if importlib.util.find_spec("tensorrt"):
    import tensorrt as trt
    print(f"tensorrt {trt.__version__}")
EOF

step "GPU tests" 120 "$PY" -m pytest -q -rs -m cuda -p no:cacheprovider \
    test/model/backends/test_gpu_backends.py test/test_device.py
TESTS=$?

step "bench_backends on CUDA (liploc-vit-s16; the last line: best and auto)" 120 \
    "$PY" bench/bench_backends.py --device cuda --models vit --repeats 3 \
    --e2e-iterations 50 --frames 32 --single-frames 16
step "bench_build on CUDA (liploc-vit-s16, scans/s)" 90 \
    "$PY" bench/bench_build.py --device cuda --models liploc-vit-s16:224 --frames 256 \
    --batch-size 64 --workers 4 --repeats 2 --configs auto:auto torch:fp16
echo "== gpu_check done in $((SECONDS - START)) s; GPU tests exit $TESTS; log $LOG"
exit "$TESTS"
