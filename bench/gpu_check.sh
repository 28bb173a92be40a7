#!/usr/bin/env bash
# The GPU checks, in one script for a CUDA machine: the CUDA tests (update on the GPU, exact resume after
# SIGKILL with and without the replay buffer on the GPU), the update alone (bench/update_speed.py), and
# training throughput against Stable-Baselines3 (bench/speed.py) on the GPU and, for scale, on the same
# machine's CPU. Each step has its own time limit and writes its output to $OUT/NAME.txt as it goes, so a
# step that runs over loses only itself. Results are in docs/BENCHMARKS.md, "GPU".
#
#   OUT=/tmp/gpu bash bench/gpu_check.sh                      # every step
#   OUT=/tmp/gpu bash bench/gpu_check.sh tests_graph update_cuda  # the steps named
#   OUT=/tmp/gpu bash bench/gpu_check.sh env tests speed_cuda_defaults_compile update_cuda_pd speed_cuda_defaults learn_cuda
#   OUT=/tmp/gpu bash bench/gpu_check.sh env tests speed_cuda update_cuda speed_cpu speed_cuda_ours speed_cuda_defaults_compile speed_cuda_defaults suite
#
# Packages missing on the machine can come along in .gpu/site (put first on PYTHONPATH when it exists;
# git-ignored). The lent H200s of this workplace have Python 3.12 and torch but no gymnasium, SB3 or
# pybullet, and pybullet 3.2.7 has no wheel for Python 3.12; this filled .gpu/site (17 MB) on the 2-core
# machine, where a Python 3.12 exists (pyenv; call it by its path, the `python3.12` shim refuses while 3.11 is
# the global version):
#   /root/.pyenv/versions/3.12.1/bin/python3.12 -m venv /tmp/v && /tmp/v/bin/pip install setuptools wheel
#   /tmp/v/bin/pip wheel --no-deps --no-build-isolation -w /tmp/pb pybullet==3.2.7    # ~10 minutes on 2 cores
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d /tmp/wh \
#       gymnasium==1.4.0 farama-notifications==0.0.6 stable-baselines3==2.9.2
#   mkdir -p .gpu/site && cd .gpu/site && for w in /tmp/wh/*.whl; do unzip -q $w; done
#   unzip -q /tmp/pb/pybullet-*.whl 'pybullet.cpython-312*' 'pybullet_utils/*'
#   strip --strip-unneeded pybullet.cpython-312*.so                # 108 MB -> 8 MB
#   D=$(python -c 'import pybullet_data as d; print(d.getDataPath())'); mkdir pybullet_data
#   cp $D/__init__.py $D/plane.urdf $D/plane100.obj $D/plane.mtl $D/checker_blue.png pybullet_data/
#   cp -r $D/xarm pybullet_data/                                   # only what Robot6Reach-v0 loads
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if [ -d .gpu/site ]; then
    export PYTHONPATH="$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}"
fi
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
step tests 200 $PY -m pytest -q -p no:cacheprovider tests/test_agent.py tests/test_resume.py -k "cuda or graph"
step tests_graph 90 $PY -m pytest -q -p no:cacheprovider tests/test_agent.py tests/test_resume.py -k "graph"
# Since the sixth session the CUDA graph is our default on CUDA: "compile=false" asks for the plain update.
# The default network and batch since the ninth session (the H200 figures in the README used 128x128).
SIZES="--hidden 80 80 --batch-size 128 --steps 2000 --extra her=false"
step speed_cuda 130 $PY bench/speed.py --device cuda $SIZES --repeats 2
step update_cuda 100 $PY bench/update_speed.py --device cuda --repeats 3 --updates 500
step speed_cuda_replay 45 $PY bench/speed.py --device cuda $SIZES --repeats 1 --only ours --extra replay_on_device=true
step speed_cuda_ue8 45 $PY bench/speed.py --device cuda $SIZES --repeats 1 --only ours --extra updates_every=8
step speed_cpu 60 $PY bench/speed.py --device cpu --threads 2 $SIZES --repeats 1
step speed_cuda_ours 40 $PY bench/speed.py --device cuda $SIZES --repeats 1 --only ours --extra compile=false
step speed_cuda_compile 80 $PY bench/speed.py --device cuda $SIZES --repeats 1 --only ours --extra compile=true
# The defaults since the ninth session (--utd 4 --policy-delay 4; 3 and 3 from the fifth): one CUDA graph per kind of update.
DEFAULTS="--extra utd=4 --extra policy_delay=4"
step speed_cuda_defaults_compile 60 $PY bench/speed.py --device cuda $SIZES --repeats 1 --only ours $DEFAULTS --extra compile=true
step update_cuda_pd 90 $PY bench/update_speed.py --device cuda --repeats 3 --updates 500 --hidden 80 80 --batch-size 128 --policy-delay 4
step speed_cuda_defaults 45 $PY bench/speed.py --device cuda $SIZES --repeats 1 --only ours $DEFAULTS --extra compile=false
# The whole suite on the CUDA machine: every test's runs use --device auto, so CUDA (and its graph) there.
# Eight pytest-xdist workers (in the image) share the one GPU; SB3 and wandb tests skip if those are missing.
step suite 200 $PY -m pytest -q -p no:cacheprovider -n 8 -m "not slow" tests/
step learn_cuda 90 $PY bench/learn.py --trainer ours --steps 3000 4000 5000 6000 --seeds 0 1 2 3 --jobs 4 --set device=cuda compile=true
echo "=== done after $SECONDS s"
