#!/usr/bin/env bash
# The reduced CPU runs behind results/ for latent-vgg19 and its three baselines (2 shared CPU cores, no GPU).
# Reduced settings, the same for every method: 4 epochs, batch 32, classifier input 32 px, fold 1 of each CK+
# protocol, FER2013 limited to 1,000 images per split (train, public_test, private_test). latent-vgg19's
# generator (1,000 steps) and encoder are trained once on 4,000 FER2013 *train* images (gan_data=fer2013), reused
# by every run below; inversion takes 10 steps. Full-scale runs: `ferbench run --suite latent-vgg19-paper`.
set -euo pipefail
export FERBENCH_DATA=${FERBENCH_DATA:-../shared/data}
OUT=${OUT:-results}
COMMON=(--set epochs=4 --set batch_size=32 --set image_size=32 --set augment=true --device cpu --out "$OUT")
LATENT=(--set gan_data=fer2013 --set gan_images=4000 --set gan_steps=1000 --set encoder_steps=100
        --set lens_epochs=3 --set invert_steps=10)

SECONDS=0; ferbench run --method latent-vgg19 --dataset synthetic --out "$OUT"   # the default small configuration
echo "synthetic default run: ${SECONDS} s wall"
for protocol in image-kfold kfold; do
  ferbench run --method latent-vgg19 --dataset ckplus48 --protocol "$protocol" --fold 1 "${COMMON[@]}" "${LATENT[@]}"
  for baseline in timm:vgg19_bn timm:resnet18 timm:resnet50; do
    ferbench run --method "$baseline" --dataset ckplus48 --protocol "$protocol" --fold 1 "${COMMON[@]}"
  done
done
ferbench run --method latent-vgg19 --dataset fer2013 --data-option limit=1000 "${COMMON[@]}" "${LATENT[@]}"
for baseline in timm:vgg19_bn timm:resnet18 timm:resnet50; do
  ferbench run --method "$baseline" --dataset fer2013 --data-option limit=1000 "${COMMON[@]}"
done
