"""PyTorch CPU reference for `npm run bench:throughput`: the MLP of bench/workloads.ts
(784-256-256-10, ReLU, softmax cross-entropy, SGD lr 0.01, batch 128), one fixed batch.

Usage: python3 bench/pytorch_mlp.py <threads>. It prints one JSON line when ready, then for
each line "<steps>" on stdin it runs that many training steps and prints their mean ms per
step, so the Node bench can alternate it with the tfjs step in the same run.
"""
import json
import sys
import time

import torch

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.set_num_threads(threads)
torch.manual_seed(1)

model = torch.nn.Sequential(
    torch.nn.Linear(784, 256), torch.nn.ReLU(),
    torch.nn.Linear(256, 256), torch.nn.ReLU(),
    torch.nn.Linear(256, 10),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.randn(128, 784)
y = torch.randint(0, 10, (128,))


def step():
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    steps = int(line)
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()  # the last step's work is done before the clock stops
    print(json.dumps({"msPerStep": (time.perf_counter() - started) * 1000 / steps}), flush=True)
