#!/usr/bin/env bash
# The GPU checks, as one call on a lent device machine (README "GPU checks").
#
# That machine's image has python3 with CUDA PyTorch, Lightning, NumPy/SciPy, scikit-image, h5py,
# pytest and hypothesis, but no TensorFlow and no package registry; this repository is not
# installed there, so the adapters are registered by name (PTYCHO_PARITY_ADAPTERS) and the
# code found through PYTHONPATH. What it checks, in order (each step's output is saved to $OUT):
#   1. environment: GPU, driver, torch and CUDA versions, TF32 flags after the backend's setup;
#   2. the torch backend's gpu-marked tests (CUDA vs CPU physics, network, fit + infer);
#   3. the torch backend's whole test folder with every tensor on CUDA (goldens, properties);
#   4. parity L0-L2 of torch on CUDA against the float64 oracle (TF32 off), default and n128;
#   5. bench: torch on cpu and cuda, one sweep point, GPU / CPU ratios.
# TensorFlow-on-GPU and TF-vs-torch L3-L5 on a GPU need TensorFlow's CUDA wheels (GBs: more
# than a call can carry); they are not checked here.
#
# Before the call, in the repository root here (the image lacks two test-only wheels):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     pytest-regressions==2.11.0 pytest-datadir==1.9.0
# then the device tool: run(command="bash scripts/gpu_checks.sh", carry=[".whl"], timeout_s=540).
# GPU_CHECKS_DEVICE=cpu runs the same steps on a CPU (to try the script without a GPU).
set -uo pipefail

OUT=${OUT:-/tmp/gpu-checks}
DEVICE=${GPU_CHECKS_DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu-checks-site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/gpu-checks-site"
fi
if ! "$PY" -c "from importlib.metadata import entry_points as e
raise SystemExit(0 if e(group='ptycho_parity.adapters') else 1)"; then
    export PTYCHO_PARITY_ADAPTERS="torch=backends.torch.adapter:TorchAdapter,oracle=parity.oracle.adapter:OracleAdapter"
fi

failed=()
step() {  # step NAME COMMAND...: run, keep its output as $OUT/NAME.log, remember a failure
    local name=$1; shift
    echo "== $name: $*"
    "$@" >"$OUT/$name.log" 2>&1
    local code=$?
    tail -n 25 "$OUT/$name.log"
    echo "== $name: exit $code"
    [ "$code" -eq 0 ] || failed+=("$name($code)")
}

step environment "$PY" - "$DEVICE" <<'EOF'
import subprocess, sys
import torch
from backends.torch import _device_scope, _select_device
with _device_scope(sys.argv[1]):
    device = _select_device()
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", device)
if device.type == "cuda":
    print(torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device))
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv"], capture_output=True, text=True).stdout)
print("matmul TF32", torch.backends.cuda.matmul.allow_tf32,
      "cuDNN TF32", torch.backends.cudnn.allow_tf32)
assert not torch.backends.cudnn.allow_tf32 or device.type != "cuda", "TF32 left on"
EOF
if [ "$DEVICE" = cuda ]; then
    step gpu_tests "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/backends/torch
fi
PTYCHO_PARITY_TORCH_DEVICE=$DEVICE step torch_tests "$PY" -m pytest -q -p no:cacheprovider \
    tests/backends/torch
for case in default n128; do
    step "parity_$case" "$PY" -m parity.cli run --backends oracle,torch --device "$DEVICE" \
        --levels L0,L1,L2 --case "$case" --out "$OUT/reports" --quiet
done
devices=cpu
[ "$DEVICE" = cpu ] || devices="cpu,$DEVICE"
step bench "$PY" -m parity.cli bench --backends torch --device "$devices" --quick \
    --out "$OUT/reports"
# At most 8 files come back: the six logs, and every bundle's summary in one file.
for bundle in "$OUT"/reports/*/; do
    for file in summary.md bench.md; do
        [ -f "$bundle$file" ] && { echo "# $(basename "$bundle")/$file"; cat "$bundle$file"; }
    done
done >"$OUT/summaries.md"
rm -rf "$OUT/reports"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all GPU checks passed on $DEVICE"
