"""PyTorch CPU yardstick for `wgtrain bench`: one epoch of the same MLP (784-256-10, SGD
lr 0.01, weight decay 1e-4) on the real MNIST training set, per batch size, 2 threads.

    python benches/pytorch_epoch.py /path/to/mnist 64 128 512

Prints one JSON object per batch size (epoch_seconds, samples_per_second), timed after one
warm-up epoch, so it can sit next to `wgtrain bench --json` in one run.
"""
import gzip, json, sys, time

import numpy as np
import torch

torch.set_num_threads(2)
d = sys.argv[1]
raw = gzip.open(f"{d}/train-images-idx3-ubyte.gz").read()[16:]
x = torch.tensor(np.frombuffer(raw, np.uint8).reshape(-1, 784), dtype=torch.float32) / 255.0
y = torch.tensor(np.frombuffer(gzip.open(f"{d}/train-labels-idx1-ubyte.gz").read()[8:], np.uint8), dtype=torch.long)
for batch in map(int, sys.argv[2:] or ["64", "128", "512"]):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, weight_decay=1e-4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True)

    def epoch():
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()

    epoch()
    start = time.perf_counter()
    epoch()
    s = time.perf_counter() - start
    print(json.dumps({"path": "pytorch-cpu", "batch_size": batch, "epoch_seconds": s, "samples_per_second": len(x) / s}))
