"""The same KIP step in plain PyTorch, for a same-machine comparison with the C# engine.

FC depth-1 NTK (W_std sqrt 2, b_std 0.1), float64, target batch 5000 drawn class-balanced
from a 60,000 x 784 pool, labels learned, Adam, autograd for the gradient: what a
straightforward port of the KIP notebook does. Prints the median time per step and which
BLAS library the process loaded (Debian's python3-torch calls whatever libblas.so.3 the
alternatives system points to: OpenBLAS when libopenblas0-pthread is installed, otherwise
the slow reference BLAS).

usage: python3 bench/pytorch_kip_step.py [--support 10] [--steps 100] [--threads 2]
"""
import argparse
import math
import os
import time

import torch


def relu_ntk(x1, x2, w2=2.0, b2=0.01):
    d = x1.shape[1]
    k = w2 * (x1 @ x2.T) / d + b2
    q1 = w2 * (x1 * x1).sum(1) / d + b2
    q2 = w2 * (x2 * x2).sum(1) / d + b2
    norm = torch.sqrt(q1[:, None] * q2[None, :])
    cos = torch.clamp(k / norm, -1 + 1e-12, 1 - 1e-12)
    theta = torch.acos(cos)
    expectation = norm * (torch.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
    derivative = (math.pi - theta) / (2 * math.pi)
    return w2 * expectation + b2 + w2 * derivative * k


def loaded_blas():
    """The BLAS shared library mapped into this process, as (short name, path)."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "blas" in os.path.basename(path).lower() or "mkl" in os.path.basename(path).lower():
                paths.add(os.path.realpath(path))
    if not paths:
        return "unknown", "-"
    path = sorted(paths)[0]
    lower = " ".join(sorted(paths)).lower()
    name = "openblas" if "openblas" in lower else "mkl" if "mkl" in lower else "blis" if "blis" in lower \
        else "reference" if "/blas/" in lower else "other"
    return name, path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--support", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    classes, n_t = 10, 5000
    train = torch.randn(60000, 784, dtype=torch.float64)
    labels = torch.arange(60000) % classes
    targets = torch.full((60000, classes), -0.1, dtype=torch.float64)
    targets[torch.arange(60000), labels] += 1.0
    by_class = [torch.nonzero(labels == c).flatten() for c in range(classes)]
    xs = torch.randn(args.support, 784, dtype=torch.float64, requires_grad=True)
    ys = torch.full((args.support, classes), -0.1, dtype=torch.float64)
    ys[torch.arange(args.support), torch.arange(args.support) % classes] += 1.0
    ys.requires_grad_(True)
    optimizer = torch.optim.Adam([xs, ys], lr=0.01)

    def step():
        index = torch.cat([pool[torch.randperm(len(pool))[: n_t // classes]] for pool in by_class])
        xt, yt = train[index], targets[index]
        kss = relu_ntk(xs, xs)
        kts = relu_ntk(xt, xs)
        ridge = 1e-6 * torch.trace(kss) / args.support
        alpha = torch.linalg.solve(kss + ridge * torch.eye(args.support, dtype=torch.float64), ys)
        loss = 0.5 * ((kts @ alpha - yt) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    blas, blas_path = loaded_blas()
    print(f"pytorch {torch.__version__}, BLAS: {blas_path}")
    print(f"result pytorch={torch.__version__} blas={blas} support={args.support} threads={torch.get_num_threads()} "
          f"median_ms={times[len(times) // 2]:.2f} mean_ms={sum(times) / len(times):.2f}")


if __name__ == "__main__":
    main()
