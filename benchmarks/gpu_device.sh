#!/usr/bin/env bash
# The GPU campaign (benchmarks/gpu_campaign.sh) on a lent device machine, in one call of the `device` tool:
#
#   here:    bash benchmarks/gpu_device.sh --prepare     # data into .gpu-data/, results/ moved aside
#   device:  bash benchmarks/gpu_device.sh <commit>      # carry [".gpu-data"], timeout_s 600
#   here:    bash benchmarks/gpu_device.sh --unpack /work/.device/N   # records into results/, results/ back
#
# What the device machine is like, and what this script does about each (all seen on 2026-12-04's lease):
# - The tree that travels is at most 64 MiB: FER2013's train and private test plus CK+48 are 60 MB, so
#   --prepare moves results/ and results-ablations/ (tracked, ~55 MB) out of the checkout until --unpack.
# - No network, and its setuptools is too old for pyproject's [project] table: `pip install -e .` fails or
#   installs no entry points. The built-in plugins are registered with a hand-written dist-info instead.
# - The copy's .git is stale (it does not hold the session's commits): git is pointed away from it
#   (GIT_DIR) and FERBENCH_SOURCE_COMMIT names the commit, which records keep with commit_from saying so.
# - Files come back only as at most 8 of 16 MiB each: the records (and the FER2013 models' weights) are
#   packed as one tar.gz split into 15 MB parts. One archive of 18 MB came back as nothing.
# - A call may run 10 minutes: each step has its own time limit (STEP_SECONDS) so the packing always runs.
set -uo pipefail
cd "$(dirname "$0")/.."
STASH=${STASH:-/tmp/ferbench-results-aside}

if [ "${1:-}" = --prepare ]; then
    data=${FERBENCH_DATA:-../shared/data}
    mkdir -p .git/info .gpu-data/fer2013 .gpu-data/ckplus48
    grep -qx '/.gpu-data/' .git/info/exclude 2>/dev/null || echo '/.gpu-data/' >>.git/info/exclude
    cp "$data"/fer2013/train.npz "$data"/fer2013/private_test.npz .gpu-data/fer2013/
    cp "$data"/ckplus48/all.npz .gpu-data/ckplus48/
    mkdir -p "$STASH" && mv results results-ablations "$STASH"/
    echo "ready: carry .gpu-data; results are in $STASH until --unpack"
    exit 0
fi
if [ "${1:-}" = --unpack ]; then
    [ -d "$STASH/results" ] && mv "$STASH"/results "$STASH"/results-ablations .
    cat "$2"/records.tgz.* | tar xzf - -C results || exit 1
    mkdir -p results/gpu-campaign && mv results/gpu-campaign-* results/gpu-campaign/
    echo "unpacked into results/: $(cat "$2"/records.txt)"
    exit 0
fi

commit=${1:?usage: gpu_device.sh <commit> | --prepare | --unpack DIR}
OUT=${OUT:?the device tool sets OUT}
RUNS=${RUNS:-/tmp/campaign}
mkdir -p "$RUNS"
export GIT_DIR=/nonexistent/ferbench-stale-git FERBENCH_SOURCE_COMMIT=$commit FERBENCH_DATA=${FERBENCH_DATA:-$PWD/.gpu-data} PYTHONUNBUFFERED=1
export FERBENCH_CACHE=${FERBENCH_CACHE:-/tmp/ferbench-cache}
if ! python -c "import sys; from importlib.metadata import entry_points
sys.exit(not any(e.name == 'nets' for e in entry_points(group='ferbench')))" 2>/dev/null; then
    site=/tmp/ferbench-site/ferbench_builtin_plugins-0.0.0.dist-info
    mkdir -p "$site"
    printf 'Metadata-Version: 2.1\nName: ferbench-builtin-plugins\nVersion: 0.0.0\n' >"$site/METADATA"
    sed -n '/^\[project.entry-points.ferbench\]/,/^$/p' pyproject.toml \
        | sed 's/^\[project.entry-points.ferbench\]/[ferbench]/; s/"//g' >"$site/entry_points.txt"
    export PYTHONPATH=/tmp/ferbench-site:$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$RUNS/gpu-campaign-device-$(date -u +%Y%m%dT%H%M%SZ).txt" 2>&1

# step SECONDS VAR=VALUE...: one campaign subset under its own time limit (0: skipped).
step() { local seconds=$1; shift; [ "$seconds" -gt 0 ] || return 0; echo "## $* (limit $seconds s, at $SECONDS s)"; timeout "$seconds" env OUT="$RUNS" "$@" bash benchmarks/gpu_campaign.sh; }
# STEP_SECONDS: the limits of the four steps below, for the 10 minutes a call may run.
read -r s1 s2 s3 s4 <<<"${STEP_SECONDS:-110 245 125 70}"
step "$s1" STEPS=fer2013 FER_BUDGETS=60s
step "$s2" STEPS=fer2013 FER_METHOD=fer-resnet-l FER_BUDGETS=3m
step "$s3" STEPS=bench BENCH_MODELS="--model fer-resnet --model timm:resnet18" \
    BENCH_MODES="--mode eager-fp32 --mode bf16-cl --mode bf16-cl-compile" BENCH_SIZES="--batch-size 256"
step "$s4" STEPS=ckplus48 CK_METHODS=fer-resnet

# Pack: every record, and the weights of the FER2013 models only (the CK+48 folds' are 20 x 6 MB).
(cd "$RUNS" && find . -name '*.safetensors' ! -path '*fer2013*' >/tmp/ferbench-left-out && \
    tar czf - --exclude-from=/tmp/ferbench-left-out . | split -b 15000000 -d - "$OUT/records.tgz.")
(cd "$RUNS" && ls -d -- */ 2>/dev/null | tr '\n' ' ') >"$OUT/records.txt"
ls -l "$OUT"
