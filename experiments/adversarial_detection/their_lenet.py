"""Wang et al.'s trained LeNet (``build-in-resource/pretrained-model/mnist/lenet.pkl``,
a torch ``state_dict``) as our parameter dict, saved as ``.npz``.

    git -C <mirror of dgl-prc/m_testing_adversatial_sample> show \
        HEAD:build-in-resource/pretrained-model/mnist/lenet.pkl > runs/adversarial_detection/lenet.pkl
    python experiments/adversarial_detection/their_lenet.py runs/adversarial_detection/lenet.pkl \
        runs/adversarial_detection/lenet_theirs.npz

Needs torch (``pip install torch==2.13.0``) to unpickle. Conv kernels go from
torch's ``(out, in, kh, kw)`` to ``(kh, kw, in, out)``, dense ones from
``(out, in)`` to ``(in, out)``; ``models.lenet_features`` flattens in torch's
``(C, H, W)`` order, so ``fc1`` needs no permutation.
"""
import sys

import numpy as np


def convert(state_dict) -> dict:
  out = {}
  for name, ours in (("conv1.0", "conv1"), ("conv2.0", "conv2"), ("fc1.0", "fc1"),
                     ("fc2.0", "fc2"), ("fc3", "fc3")):
    w = state_dict[f"{name}.weight"].numpy()
    out[f"{ours}/kernel"] = np.transpose(w, (2, 3, 1, 0)) if w.ndim == 4 else w.T
    out[f"{ours}/bias"] = state_dict[f"{name}.bias"].numpy()
  return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


if __name__ == "__main__":
  import torch
  sd = torch.load(sys.argv[1], map_location="cpu", weights_only=False, encoding="latin1")
  np.savez(sys.argv[2], **convert(sd))
  print(f"wrote {sys.argv[2]}")
