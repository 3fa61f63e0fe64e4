"""The PyTorch peer of `wgtrain bench --population K`: K models of the same MLP (784-256-10)
trained as one fused population on the CPU, HFTA-style (Wang et al., MLSys 2021): each
layer's weights stacked `[K, O, I]` and biases `[K, 1, O]`, the forward one
`torch.baddbmm` per layer over all members (layer 0 broadcasting the shared minibatch to
every member), one backward for the sum of the K mean losses, and one SGD step over the
stacked tensors with a learning rate and a weight decay per member, in
`torch.optim.SGD`'s arithmetic (`g = grad + wd * p; p = p - lr * g`).

The same work as wgtrain's row: the first `--samples` MNIST training images as [0, 1]
pixels, one shuffle per epoch shared by the members, the last minibatch partial, member m
with lr 0.01 * 1.1^m and weight decay 1e-4 * (1 + m) (`bench --population`'s members),
`nn.Linear`'s initialisation, one warm-up epoch and one timed.

    python benches/pytorch_population.py DIR --population 1,8,32 --batch-sizes 64,512 \\
        --samples 20000

Prints one JSON object per (batch size, K): epoch_seconds, member_samples_per_second (K
samples per trained sample), samples_per_second_per_member and the timed epoch's mean
training loss, so it sits next to `wgtrain bench --population K --json` in one run.
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(d, samples):
    raw = gzip.open(f"{d}/train-images-idx3-ubyte.gz").read()[16:]
    x = torch.tensor(np.frombuffer(raw, np.uint8).reshape(-1, 784)[:samples], dtype=torch.float32) / 255.0
    labels = gzip.open(f"{d}/train-labels-idx1-ubyte.gz").read()[8:]
    y = torch.tensor(np.frombuffer(labels, np.uint8)[:samples].astype(np.int64))
    return x, y


def stacked_linear(k, i, o):
    """K copies of nn.Linear(i, o)'s initialisation: U(-1/sqrt(i), 1/sqrt(i)) for both."""
    bound = 1.0 / math.sqrt(i)
    w = torch.empty(k, o, i).uniform_(-bound, bound).requires_grad_()
    b = torch.empty(k, 1, o).uniform_(-bound, bound).requires_grad_()
    return w, b


def population_epoch(params, lr, wd, x, y, batch, generator):
    """One epoch of every member on the same minibatches; the mean of the members' mean
    training losses."""
    w0, b0, w1, b1 = params
    k = w0.shape[0]
    order = torch.randperm(len(x), generator=generator)
    total, steps = 0.0, 0
    for start in range(0, len(x), batch):
        idx = order[start:start + batch]
        xb, yb = x[idx], y[idx]
        h = torch.relu(torch.baddbmm(b0, xb.expand(k, -1, -1), w0.transpose(1, 2)))
        logits = torch.baddbmm(b1, h, w1.transpose(1, 2))
        # The sum over members of each member's mean loss: member m's gradient is that of
        # its own mean loss.
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(k), reduction="sum") / len(idx)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                shape = (k,) + (1,) * (p.dim() - 1)
                g = p.grad.add(p * wd.view(shape))
                p.sub_(g * lr.view(shape))
        total += loss.item() / k
        steps += 1
    return total / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="directory with the MNIST training files (.gz)")
    ap.add_argument("--population", default="1,8,32", help="member counts K, comma-separated")
    ap.add_argument("--batch-sizes", default="64,512", help="batch sizes, comma-separated")
    ap.add_argument("--samples", type=int, default=60000, help="training samples per epoch")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, y = load(a.data, a.samples)
    for batch in map(int, a.batch_sizes.split(",")):
        for k in map(int, a.population.split(",")):
            torch.manual_seed(1)
            params = [*stacked_linear(k, 784, 256), *stacked_linear(k, 256, 10)]
            lr = torch.tensor([0.01 * 1.1**m for m in range(k)])
            wd = torch.tensor([1e-4 * (1 + m) for m in range(k)])
            gen = torch.Generator().manual_seed(1)
            population_epoch(params, lr, wd, x, y, batch, gen)
            start = time.perf_counter()
            loss = population_epoch(params, lr, wd, x, y, batch, gen)
            s = time.perf_counter() - start
            print(json.dumps({
                "path": "pytorch-cpu",
                "batch_size": batch,
                "members": k,
                "samples": len(x),
                "threads": a.threads,
                "torch": torch.__version__,
                "epoch_seconds": s,
                "samples_per_second_per_member": len(x) / s,
                "member_samples_per_second": k * len(x) / s,
                "train_loss": loss,
            }), flush=True)


if __name__ == "__main__":
    main()
