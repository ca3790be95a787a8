#!/usr/bin/env bash
# Issue 19 (the accuracy hypothesis of the conductance gap): a ResNet-20 near
# Wu et al.'s 81.9% test accuracy, by the recipe of
# experiments/train_resnet20_cifar10.sh cut to 7 epochs (the one-cycle schedule
# spans the 7 epochs, so this is a shorter run of the same recipe, not an early
# stop of the 30-epoch run). Rerunning the same command resumes from the newest
# checkpoint in the workdir.
#   experiments/train_resnet20_cifar10_e7.sh [WORKDIR]
set -euo pipefail
workdir="${1:-runs/resnet20_cifar10_e7}"
exec explicable-jax train --dataset cifar10 --model resnet20 --epochs 7 \
  --batch-size 128 --optimizer sgd --lr 0.2 --schedule one_cycle \
  --weight-decay 5e-4 --momentum 0.9 --validation paper --seed 0 \
  --data-dir "${EXPLICABLE_JAX_DATA:-../shared/data}" --checkpoint-every 100 \
  --log-every 50 --workdir "$workdir" --no-progress
