#!/usr/bin/env bash
# Trains the ResNet-20 of experiments/results/resnet20_cifar10.md (and of the
# error-detection issue). Rerunning the same command resumes from the newest
# checkpoint in the workdir.
#   experiments/train_resnet20_cifar10.sh [WORKDIR]   (EPOCHS=N for a shorter run of the recipe)
set -euo pipefail
workdir="${1:-runs/resnet20_cifar10}"
exec explicable-jax train --dataset cifar10 --model resnet20 --epochs "${EPOCHS:-30}" \
  --batch-size 128 --optimizer sgd --lr 0.2 --schedule one_cycle \
  --weight-decay 5e-4 --momentum 0.9 --validation paper --seed 0 \
  --data-dir "${EXPLICABLE_JAX_DATA:-../shared/data}" --checkpoint-every 100 \
  --log-every 50 --workdir "$workdir" --no-progress
