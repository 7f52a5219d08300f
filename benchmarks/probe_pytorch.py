#!/usr/bin/env python3
"""The engine's probe network in PyTorch, for comparison with `gidedge bench engine`.

Input 8x3x128x128; four stages of 16, 32, 64, 128 channels, each
conv3x3 stride 2 pad 1 (+bias) -> ReLU -> conv3x3 stride 1 pad 1 (+bias) -> ReLU;
loss = mean of the squared output; AdamW lr 1e-3, weight decay 0.

Usage: python3 benchmarks/probe_pytorch.py [--threads 2] [--steps 20] [--warmup 3]
Prints one JSON object with forward_ms (no_grad), train_step_ms (median), gflops
and cpu_ms_per_step. On a shared machine set OMP_WAIT_POLICY=PASSIVE: spinning
OpenMP threads otherwise make both the wall and the CPU time meaningless.
Needs torch (Debian: apt-get install python3-torch).
"""
import argparse
import json
import resource
import statistics
import time

import torch
from torch import nn


def probe_net():
    layers, cin = [], 3
    for ch in (16, 32, 64, 128):
        layers += [nn.Conv2d(cin, ch, 3, stride=2, padding=1), nn.ReLU(),
                   nn.Conv2d(ch, ch, 3, stride=1, padding=1), nn.ReLU()]
        cin = ch
    return nn.Sequential(*layers)


def step_flops(batch=8, size=128):
    """Forward + backward FLOPs, counted as gidedge counts them."""
    total, cin, h, first = 0.0, 3, size, True
    for ch in (16, 32, 64, 128):
        for stride in (2, 1):
            oh = (h + 2 - 3) // stride + 1
            macs = batch * ch * oh * oh * cin * 9
            total += 2 * macs * (2 if first else 3)  # fwd + dW (+ dX after the first layer)
            first, cin, h = False, ch, oh
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    net = probe_net()
    x = torch.randn(8, 3, 128, 128)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0)

    def train_step():
        t0 = time.perf_counter()
        y = net(x)
        loss = (y * y).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return (time.perf_counter() - t0) * 1e3

    for _ in range(args.warmup):
        train_step()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    steps = [train_step() for _ in range(args.steps)]
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ms = ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) * 1e3 / args.steps
    fwd = []
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            net(x)
            if i >= args.warmup:
                fwd.append((time.perf_counter() - t0) * 1e3)
    step_ms = statistics.median(steps)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": args.threads,
        "forward_ms": round(statistics.median(fwd), 3),
        "train_step_ms": round(step_ms, 3),
        "train_step_min_ms": round(min(steps), 3),
        "gflops": round(step_flops() / (step_ms * 1e6), 1),
        # CPU time over all threads: with OMP_WAIT_POLICY=PASSIVE it is the
        # work done, less distorted than wall time on a shared machine.
        "cpu_ms_per_step": round(cpu_ms, 1),
    }))


if __name__ == "__main__":
    main()
