#!/bin/bash
# The CIFAR-10 experiment of Olmo, Sengupta and Kambhampati, scaled to 2 CPU cores.
#
#   experiments/explicable_cifar10/run.sh [DATA_DIR] [WORKDIR]
#
# 1. the IHL / CHL / EKL matrices; 2. a pre-activation ResNet-v2 (depth 11)
# trained with cross-entropy for 6 epochs; 3. copies fine-tuned for 1 epoch
# with each weighted loss, with the authors' softmax targets and with the
# paper's L1 targets, and a cross-entropy control fine-tuned the same way;
# 4. evaluation, figures and tables. Every step resumes after an interruption
# and is skipped once its result.json exists.
set -euo pipefail
DATA=${1:-../shared/data}
WORK=${2:-runs/explicable_cifar10}
cd "$(dirname "$0")/../.."
mkdir -p "$WORK"

python experiments/explicable_cifar10/matrices.py --data-dir "$DATA" --out "$WORK"

MODEL=(--dataset cifar10 --model resnet_v2 --model-kwargs '{"depth": 11}'
       --batch-size 128 --optimizer sgd --momentum 0.9 --weight-decay 5e-4
       --validation paper --seed 0 --data-dir "$DATA" --checkpoint-every 100
       --log-every 50 --no-progress)

run() {  # run NAME ARGS...: train into $WORK/NAME unless it is finished
  local name=$1; shift
  if [ -f "$WORK/$name/result.json" ]; then echo "== $name: done"; return; fi
  echo "== $name: explicable-jax train $*"
  explicable-jax train "${MODEL[@]}" "$@" --workdir "$WORK/$name"
}

run cce --epochs 6 --lr 0.2 --schedule one_cycle

FINETUNE=(--epochs 1 --lr 0.02 --schedule cosine --init-from "$WORK/cce")
for target in softmax l1; do
  for m in ihl chl ekl; do
    run "${m}_${target}" "${FINETUNE[@]}" --loss weighted \
      --loss-kwargs "{\"weights\": \"$WORK/W_${m}.npy\", \"target\": \"$target\"}"
  done
  if [ "$target" = softmax ]; then
    run cce_finetuned "${FINETUNE[@]}" --loss cross_entropy
  fi
done

python experiments/explicable_cifar10/evaluate.py --workdir "$WORK" --data-dir "$DATA" \
  --out experiments/results/explicable_cifar10
cp "$WORK/matrices.json" experiments/results/explicable_cifar10/
