#!/usr/bin/env bash
# Issue 19 (the accuracy hypothesis of the conductance gap): a ResNet-20 near
# Wu et al.'s 81.9% test accuracy, by the recipe of
# experiments/train_resnet20_cifar10.sh cut to 7 epochs (the one-cycle schedule
# spans the 7 epochs, so this is a shorter run of the same recipe, not an early
# stop of the 30-epoch run). Rerunning the same command resumes from the newest
# checkpoint in the workdir.
#   experiments/train_resnet20_cifar10_e7.sh [WORKDIR]
set -euo pipefail
EPOCHS=7 exec "$(dirname "$0")/train_resnet20_cifar10.sh" "${1:-runs/resnet20_cifar10_e7}"
