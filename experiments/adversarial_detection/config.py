"""Wang et al.'s MNIST protocol (ICSE 2019, dgl-prc/m_testing_adversatial_sample,
commit d45cf9b; ``baseline/`` from b42474807a, the last commit that has it),
item by item, with the file each setting comes from. Budgets are given in
their normalised units (``(x - 0.1307) / 0.3081``) and converted to our
``[0, 1]`` pixel units by ``models.STD`` in ``run.py``.

Command (the results page is written by ``make_page.py``)::

    python experiments/adversarial_detection/run.py --data-dir /work/shared/data \
        --workdir runs/adversarial_detection \
        --out experiments/results/adversarial_detection

The numbers aimed at: ``PAPER_AUROC`` (their README's MNIST table).
"""

SEED = 5566  # utils/data_manger.py: random_seed

# Their README, "AUROC Report for MNIST Data" (LeNet): attack -> operator -> AUROC.
PAPER_AUROC = {
    "fgsm": {"NAI": 0.9647, "GF": 0.9639, "NS": 0.9354, "WS": 0.9515},
    "jsma": {"NAI": 0.9941, "GF": 0.9957, "NS": 0.9960, "WS": 0.9955},
    "cw": {"NAI": 0.9576, "GF": 0.9501, "NS": 0.9089, "WS": 0.9225},
    "bb": {"NAI": 0.9690, "GF": 0.9674, "NS": 0.9439, "WS": 0.9590},
    "deepfool": {"NAI": 0.9862, "GF": 0.9837, "NS": 0.9812, "WS": 0.9836},
}
ATTACKS = ("fgsm", "jsma", "cw", "bb", "deepfool")
OPERATORS = ("NAI", "GF", "NS", "WS")

# scripts/craftAdvSamples.sh (MNIST defaults) and attacks/craft_adversarial_img.py.
ATTACK_SETTINGS = {
    # (0.35,true): eps in normalised units; all correctly classified test images;
    # label = true label; loss F.nll_loss on logits (attacks/attack_type/fgsm.py).
    "fgsm": {"eps": 0.35},
    # (0.12): gamma; theta=1, optimal=True (one pixel per iteration), random
    # target != true label, correctly classified test images shuffled, stop at
    # 5000 successes (genereate_jsma_samples; attacks/attack_type/jsma.py).
    "jsma": {"gamma": 0.12, "theta": 1.0, "pixels": 1, "max_successes": 5000},
    # (0.6,10000): c and Adam iterations; lr=1e-3, k=0, untargeted against the
    # model's prediction, no binary search, batches of 2 for at most 1500
    # batches (genereate_cw_samples; attacks/attack_type/carlinl2.py).
    "cw": {"c": 0.6, "iterations": 10000, "learning_rate": 1e-3, "confidence": 0.0,
           "max_images": 3000},
    # (0.35,6,10,200,0.1): eps, substitute rounds, epochs per round, seed size,
    # lambda; SGD lr 0.01 momentum 0.5, batches of 64; FGSM with the true
    # label on train + the rest of test (genereate_balck_box_samples;
    # attacks/attack_type/blackBox.py).
    "bb": {"eps": 0.35, "rounds": 6, "epochs": 10, "seed_size": 200, "step_size": 0.1,
           "learning_rate": 0.01, "momentum": 0.5, "batch_size": 64},
    # (0.02,50): overshoot, max_iter; all 10 classes; stop at 4000
    # (genereate_deepfool_samples; attacks/attack_type/deepfool.py).
    "deepfool": {"overshoot": 0.02, "max_iter": 50, "max_images": 4000},
}

# scripts/default-test/build_mnist_auc_analysis.sh: mutated_models/mnist/lenet/<op>/5e-2p,
# 500 mutants (maxModelsUsed); model_mutation/mutationOperator.py: acc_tolerant 0.9 of
# the original's test accuracy (all 10000 test images).
MUTATION_RATE = 0.05
MUTANTS = 500
GATE = 0.9

# lcr_auc/mutated_testing.py MAX_NUM_SAMPLES; detect/adv_detect.py TEST_SMAPLES;
# utils/data_manger.py MyDataset(max_size=1000) picks 1000 adversarial files at random.
NORMAL = 1000
MAX_ADV = 1000

# detect/adv_detect.py and scripts/detect.sh: alpha = beta = 0.05, threshold = mean
# normal LCR + its 99% confidence half-width (2.58 std / sqrt(n); the "--threshold"
# help text and the thresholds in get_threshold_relax's docstring), extendScale 1.0,
# relaxScale 0.1 (indifference = 0.1 threshold), at most 500 mutants.
SPRT = {"alpha": 0.05, "beta": 0.05, "z99": 2.58, "relax": 0.1}

# baseline/kde.py: bandwidth 1.2 for MNIST, KDE of the last hidden layer of the
# training images per class; Bayesian uncertainty from 50 dropout passes, p = 0.5
# (baseline/ModelAdapter.py: Dropout2d after the convolutions, Dropout after fc2).
KDE_BANDWIDTH = 1.2
BU_PASSES = 50
BU_RATE = 0.5

# utils/model_trainer.py train_mnist_model: SGD lr 0.01 momentum 0.5, batch 64,
# CrossEntropyLoss; the epoch count is not in the repository (we use 10).
TRAIN = {"learning_rate": 0.01, "momentum": 0.5, "batch_size": 64, "epochs": 10}

# Their SPRT thresholds for MNIST at rate 0.05 (mean normal LCR + 99% CI, from
# the comment block of detect/adv_detect.py, commit 82b1e3d, and
# detect/detector.py, commit 7ddea4f): operator -> rt.
THEIR_THRESHOLDS = {"NAI": 0.0441, "NS": 0.0124, "WS": 0.0425, "GF": 0.0308}
# The only SPRT output of theirs that could be read here: README (commit
# cad9237), the expected output of detect.sh (MNIST, NAI 5e-2p, JSMA,
# rt 0.0441): "adverage accuracy:0.998, avgerage mutated used:35.814". The
# paper's per-attack table (ICSE 2019) is not in ../shared/papers and no full
# text of it could be reached from this machine.
THEIR_SPRT = {("NAI", "jsma"): {"accuracy": 0.998, "mutants_used": 35.814}}
