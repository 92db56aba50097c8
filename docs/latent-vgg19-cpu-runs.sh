#!/usr/bin/env bash
# The reduced CPU runs behind results/ for latent-vgg19 and its like-for-like baseline timm:vgg19_bn (one shared
# CPU core, no GPU; issue 6 reran them after the chance-level fix). Reduced settings, the same for both methods:
# 3 epochs, batch 32, classifier input 32 px, fold 1 of each CK+ protocol, FER2013 limited to 1,000 images per
# split (train, public_test, private_test). latent-vgg19's generator (1,000 GAN steps at 48 px) and encoder are
# trained once on 4,000 FER2013 *train* images (gan_data=fer2013) and reused from the cache by every real-data
# run below; the lens trains 3 epochs, the optimisation takes 6 steps at lr 0.05.
# Full-scale runs: `ferbench run --suite latent-vgg19-paper`.
set -euo pipefail
export FERBENCH_DATA=${FERBENCH_DATA:-../shared/data}
OUT=${OUT:-results}
COMMON=(--set epochs=3 --set batch_size=32 --set image_size=32 --set augment=true --device cpu --out "$OUT")
LATENT=(--set gan_data=fer2013 --set gan_images=4000 --set gan_steps=1000 --set encoder_steps=100
        --set gan_image_size=48 --set lens_epochs=3 --set invert_steps=6 --set invert_lr=0.05)

SECONDS=0; ferbench run --method latent-vgg19 --dataset synthetic --out "$OUT"   # the default small configuration
echo "synthetic default run: ${SECONDS} s wall"
for protocol in image-kfold kfold; do
  ferbench run --method latent-vgg19 --dataset ckplus48 --protocol "$protocol" --fold 1 "${COMMON[@]}" "${LATENT[@]}"
  ferbench run --method timm:vgg19_bn --dataset ckplus48 --protocol "$protocol" --fold 1 "${COMMON[@]}"
done
ferbench run --method latent-vgg19 --dataset fer2013 --data-option limit=1000 "${COMMON[@]}" "${LATENT[@]}"
