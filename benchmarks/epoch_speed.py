"""One training epoch of BaseNetwork(ReLU) on the 50,000 training images, three ways, side by side.

(a) actlab's loop: the images kept in memory as bytes, normalized batch by batch by ``TensorLoader``;
(b) the source's loop: torchvision's dataset, per-image PIL transforms, through a ``DataLoader``;
(c) the floor: only the matrix multiplications of the same epoch (forward and backward GEMMs of the
    same shapes, without autograd, activations, loss or optimizer).

The three are run in turns, several rounds, and the median of each is compared, so that a noisy
machine slows all of them alike. Then each hand-written activation is timed against torch's own
kernel in the same loop (``activation_speed.py``). ``notebook_memory.py`` measures the notebooks'
peak memory.

Usage: python benchmarks/epoch_speed.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import activation_speed
import torch
from torch.utils.data import DataLoader

from actlab import BaseNetwork, get_activation, load_fashion_mnist, set_seed
from actlab.data import torchvision_datasets
from actlab.network import DEFAULT_HIDDEN_SIZES
from actlab.training import FULL_PROTOCOL, evaluate, make_optimizer, test_model, train_epoch

BATCH_SIZE = 256


def fresh_setup():
    set_seed(0)
    net = BaseNetwork(get_activation("relu"))
    return net, make_optimizer(net, FULL_PROTOCOL)


def actlab_epoch(data) -> None:
    net, opt = fresh_setup()
    train_epoch(net, data.train.loader(BATCH_SIZE, shuffle=True, drop_last=True), opt)


def source_epoch(train_set) -> None:
    net, opt = fresh_setup()
    train_epoch(net, DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, drop_last=True), opt)


def actlab_validation(data) -> None:
    evaluate(fresh_setup()[0], data.val)


def source_validation(val_set) -> None:
    test_model(fresh_setup()[0], DataLoader(val_set, batch_size=1024, shuffle=False, drop_last=False))


def gemm_epoch(batches: int) -> None:
    sizes = [784, *DEFAULT_HIDDEN_SIZES, 10]
    weights = [torch.randn(n_out, n_in) * 0.01 for n_in, n_out in itertools.pairwise(sizes)]
    biases = [torch.zeros(n_out) for n_out in sizes[1:]]
    x = torch.randn(BATCH_SIZE, sizes[0])
    for _ in range(batches):
        inputs = [x]
        for w, b in zip(weights, biases):
            inputs.append(torch.addmm(b, inputs[-1], w.t()))
        grad = torch.randn(BATCH_SIZE, sizes[-1])
        for layer in reversed(range(len(weights))):
            grad_w = grad.t() @ inputs[layer]
            if layer:
                grad = grad @ weights[layer]
            del grad_w


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    wall = time.perf_counter()
    data = load_fashion_mnist("cpu", quick=False)
    train_set, val_set, _ = torchvision_datasets()
    batches = len(data.train) // BATCH_SIZE
    print(activation_speed.machine())
    print(f"one epoch: {batches} batches of {BATCH_SIZE}, BaseNetwork(ReLU) 784-512-256-256-128-10, SGD\n")

    runs = {"a": [], "b": [], "c": [], "a val": [], "b val": []}
    gemm_epoch(10)
    for round_ in range(1, args.rounds + 1):
        runs["a"].append(timed(actlab_epoch, data))
        runs["b"].append(timed(source_epoch, train_set))
        runs["c"].append(timed(gemm_epoch, batches))
        runs["a val"].append(timed(actlab_validation, data))
        runs["b val"].append(timed(source_validation, val_set))
        print(f"round {round_}: " + "  ".join(f"({k}) {v[-1]:5.2f} s" for k, v in runs.items()))
    a, b, c, a_val, b_val = (statistics.median(v) for v in runs.values())
    print(f"\nmedian seconds per epoch: (a) actlab {a:.2f}   (b) source {b:.2f}   (c) GEMMs only {c:.2f}")
    print(f"(b)/(a) = {b / a:.1f}   actlab's loop against the source's (target: at least 4)")
    print(f"(a)/(c) = {a / c:.2f}  actlab's loop against its matrix multiplications (target: at most 1.2)")
    print(f"(b)/(c) = {b / c:.1f}   the most any loop could gain over the source's, all overhead removed")
    print(f"\nvalidation pass over 10,000 images: actlab {a_val:.2f} s, source {b_val:.2f} s")
    print(f"whole epoch with its validation, source/actlab = {(b + b_val) / (a + a_val):.1f}\n")
    activation_speed.report(activation_speed.first_batches(data), args.rounds)

    print(f"\nwall time of the whole comparison: {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
