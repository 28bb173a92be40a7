#!/usr/bin/env bash
# The GPU checks in one script, for any CUDA machine with the package and its test and bench extras installed
# (a CUDA build of torch first, then pip install -e ".[test,bench]"): the CUDA tests (the update on the GPU, the
# CUDA graph against the plain update, exact resume after SIGKILL on CUDA), the update alone, and training
# throughput against Stable-Baselines3 on the GPU and, for scale, on the same machine's CPU. Each step has its own time limit and writes its output to
# $OUT/NAME.txt as it goes, so a step that runs over loses only itself. docs/BENCHMARKS.md, "GPU", reads them.
#
#   OUT=/tmp/gpu bash bench/gpu_check.sh                        # every step
#   OUT=/tmp/gpu bash bench/gpu_check.sh env tests speed_cuda    # the steps named
#   PY=/path/to/python OUT=/tmp/gpu bash bench/gpu_check.sh      # another interpreter
#
# Run it from the repository root.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}

ONLY=" $* "
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then return; fi
    echo "=== $name ($(date +%T), limit ${limit}s): $*"
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "--- $name: exit $? after $SECONDS s in all"
    tail -n 14 "$OUT/$name.txt"
}

step env 60 sh -c "nvidia-smi -L; nproc; $PY -c 'import sys, torch, gymnasium, pybullet; print(sys.version); print(torch.__version__, torch.cuda.get_device_name())'"
step tests 300 $PY -m pytest -q -p no:cacheprovider tests/test_agent.py tests/test_resume.py -k "cuda or graph"
# The defaults' network and batch, HER off (SB3's side has none); the CUDA graph is the default on CUDA,
# compile=false asks for the plain update.
SIZES="--hidden 80 80 --batch-size 128 --steps 2000 --extra her=false"
step speed_cuda 150 $PY -m bench.speed --device cuda $SIZES --repeats 2
step speed_cuda_plain 60 $PY -m bench.speed --device cuda $SIZES --repeats 1 --only ours --extra compile=false
step speed_cuda_ue8 60 $PY -m bench.speed --device cuda $SIZES --repeats 1 --only ours --extra updates_every=8
step speed_cuda_defaults 60 $PY -m bench.speed --device cuda $SIZES --repeats 1 --only ours --extra utd=4 --extra policy_delay=4
step speed_cpu 90 $PY -m bench.speed --device cpu --threads 2 $SIZES --repeats 1
step update_cuda 120 $PY -m bench.update_speed --device cuda --repeats 3 --updates 500
# The whole suite: every run under --device auto trains on CUDA there.
step suite 600 $PY -m pytest -q -p no:cacheprovider -m "not slow" tests/
echo "=== done after $SECONDS s"
