#!/usr/bin/env bash
# The GPU campaign of issue 19, in one go: what a person with one GPU runs to produce every GPU record
# (bench rows per mode, FER2013 time to accuracy, CK+48 folds, the GAN methods), written as result records
# under $OUT (default results/) with the device named in each.
#
#   FERBENCH_DATA=/path/to/data bash benchmarks/gpu_campaign.sh              # the real campaign
#   SCALE=tiny DEVICE=cpu OUT=/tmp/c bash benchmarks/gpu_campaign.sh         # the rehearsal the tests run
#
# SCALE=full (default) runs the real settings on $DEVICE (default cuda) and FERBENCH_DATA's FER2013 and
# CK+48; SCALE=tiny runs every step with the same commands on the synthetic dataset with tiny settings and
# the smallest compact net, so the script cannot rot without a GPU. Steps run in order of value; each is timed, a failing step is logged
# and the next one runs; the exit status is the number of failed steps. STEPS="bench fer2013" runs a subset.
# Budget (one H200, from the issue): bench ~3 min, FER2013 1 + 3 min of training, the rest what remains of
# 10 minutes; later steps are the ones to drop when time is short. At full scale BENCH_MODELS, BENCH_MODES,
# BENCH_SIZES (option lists as below), FER_BUDGETS, FER_METHOD and CK_METHODS override the step's settings,
# so a short lease can run a subset, e.g. FER_METHOD=fer-resnet-l FER_BUDGETS=3m STEPS=fer2013.
set -uo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-full}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-results}
STEPS=${STEPS:-"bench fer2013 ckplus48 latent-vgg19 arabian-gan"}
FERBENCH=${FERBENCH:-"python -m ferbench.cli"}
mkdir -p "$OUT"
LOG="$OUT/gpu-campaign-$(date -u +%Y%m%dT%H%M%SZ).log"

if [ "$SCALE" = tiny ]; then
    FER=synthetic CK=synthetic GAN_FER=synthetic GAN_CK=synthetic-snapshot
    BENCH_MODELS="--model fer-resnet-s"
    BENCH_MODES="--mode eager-fp32 --mode fp32-cl"
    BENCH_SIZES="--batch-size 8 --warmup 0 --reps 1 --peak-tflops 1"
    TINY_DATA=(--data-option per_class=2 --data-option train_subjects=2 --data-option test_subjects=1)
    FER_BUDGETS="3s" FER_METHOD=fer-resnet-s CK_METHODS="fer-resnet-s"
    FOLDS=(--folds 2 --epochs 1 --batch-size 8)
    LATENT_SET=(--set gan_steps=2 --set encoder_steps=2 --set lens_epochs=1 --set invert_steps=1 --set epochs=1)
    ARABIAN=(--set epochs=1 --set warmup_epochs=0 --set classifier_epochs=1 --set batch_size=8 --set image_size=16 --set width=4)
else
    FER=fer2013 CK=ckplus48 GAN_FER=fer2013 GAN_CK=ckplus48
    BENCH_MODELS=${BENCH_MODELS:-"--model timm:resnet18 --model timm:vgg19_bn --model fer-resnet --model fer-resnet-l --model fer-vgg8 --model arabian-gan --model latent-vgg19"}
    BENCH_MODES=${BENCH_MODES:-"--mode eager-fp32 --mode bf16-cl --mode bf16-cl-compile --mode bf16-cl-cudagraphs"}
    BENCH_SIZES=${BENCH_SIZES:-"--batch-size 256 --batch-size 1024"}
    TINY_DATA=()
    FER_BUDGETS=${FER_BUDGETS:-"60s 3m"} FER_METHOD=${FER_METHOD:-fer-resnet}
    CK_METHODS=${CK_METHODS:-"fer-resnet timm:resnet18 timm:vgg19_bn"}
    FOLDS=()
    # the latent-vgg19-paper suite's settings (registry.yaml)
    LATENT_SET=(--set epochs=30 --set batch_size=64 --set image_size=48 --set fc_dim=4096 --set latent_fc_dim=512
                --set gan_image_size=64 --set gan_channels=128 --set mapping_layers=8 --set gan_steps=20000
                --set encoder_backbone=resnet18 --set encoder_steps=5000 --set encoder_batch_size=64
                --set lens_epochs=10 --set invert_steps=100 --set gan_data=fer2013 --component lens=timm:resnet18)
    ARABIAN=(--set image_size=96)
fi

failed=0
step() {  # step NAME COMMAND...: run, time and log one command; a failure is counted, not fatal
    local name=$1; shift
    local started=$SECONDS
    echo "== $name: $*" | tee -a "$LOG"
    if "$@" 2>&1 | tee -a "$LOG"; then
        echo "== $name: done in $((SECONDS - started)) s" | tee -a "$LOG"
    else
        failed=$((failed + 1))
        echo "== $name: FAILED after $((SECONDS - started)) s" | tee -a "$LOG"
    fi
}
wants() { [[ " $STEPS " == *" $1 "* ]]; }

echo "gpu campaign: scale $SCALE, device $DEVICE, out $OUT, steps: $STEPS" | tee "$LOG"
if wants bench; then
    # shellcheck disable=SC2086 # word splitting of the option lists is meant
    step bench $FERBENCH bench --device "$DEVICE" $BENCH_MODELS $BENCH_MODES $BENCH_SIZES --phase both --out "$OUT/bench"
fi
if wants fer2013; then
    for budget in $FER_BUDGETS; do
        step "fer2013-$budget" $FERBENCH run --method "$FER_METHOD" --dataset "$FER" --device "$DEVICE" \
            --time-budget "$budget" --set eval_every=1 "${TINY_DATA[@]}" --out "$OUT"
    done
fi
if wants ckplus48; then
    for protocol in kfold image-kfold; do
        for method in $CK_METHODS; do
            step "ckplus48-$protocol-$method" $FERBENCH run --method "$method" --dataset "$CK" --protocol "$protocol" \
                --device "$DEVICE" "${FOLDS[@]}" "${TINY_DATA[@]}" --out "$OUT"
        done
    done
fi
if wants latent-vgg19; then
    for protocol in kfold image-kfold; do
        step "latent-vgg19-$protocol" $FERBENCH run --method latent-vgg19 --dataset "$CK" --protocol "$protocol" \
            --device "$DEVICE" "${FOLDS[@]}" "${LATENT_SET[@]}" "${TINY_DATA[@]}" --out "$OUT"
    done
fi
if wants arabian-gan; then
    # CK+48 restyled towards FER2013 and back (on the synthetic set, its own two styles).
    step arabian-gan-ck-to-fer $FERBENCH run --method arabian-gan --dataset "$GAN_CK" --target "$GAN_FER" \
        --device "$DEVICE" "${ARABIAN[@]}" "${TINY_DATA[@]}" --out "$OUT"
    step arabian-gan-fer-to-ck $FERBENCH run --method arabian-gan --dataset "$GAN_FER" --target "$GAN_CK" --device "$DEVICE" \
        "${ARABIAN[@]}" "${TINY_DATA[@]}" --out "$OUT"
fi
echo "gpu campaign: $failed failed step(s); log $LOG" | tee -a "$LOG"
exit "$failed"
