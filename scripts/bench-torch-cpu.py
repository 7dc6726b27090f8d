#!/usr/bin/env python3
"""PyTorch CPU reference for `trainer bench --device flex`: the same short-run net (Nijkamp et
al. 2019: conv 3x3 n_f, three 4x4 stride-2 convs doubling the width, a 4x4 valid conv to one
energy, LeakyReLU 0.2), the same Langevin batch (K steps of x += (s^2/2) grad f + s noise from
uniform noise) and one training iteration (the chain, then an Adam step on
f(data) - f(samples)), timed the same way (median of --repeats after warm-up runs).

    python3 scripts/bench-torch-cpu.py --n-f 16 --batch 16 --steps 20
    trainer bench --device flex --n-f 16 --batch 16 --steps 20

Needs torch from PyPI (`pip install torch`); not part of the tests. Threads: all cores, as
burn's flex backend uses them.
"""
import argparse
import os
import time

import torch
import torch.nn as nn


def energy_net(n_f: int, channels: int) -> nn.Sequential:
    widths = [channels, n_f, 2 * n_f, 4 * n_f, 8 * n_f]
    layers = [nn.Conv2d(widths[0], widths[1], 3, 1, 1), nn.LeakyReLU(0.2)]
    for c_in, c_out in zip(widths[1:-1], widths[2:]):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
    layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0))
    return nn.Sequential(*layers)


def langevin(net: nn.Module, batch: int, side: int, steps: int, step_size: float) -> torch.Tensor:
    x = torch.empty(batch, 3, side, side).uniform_(-1.0, 1.0)
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), [x])
        with torch.no_grad():
            x = x + 0.5 * step_size**2 * grad + step_size * torch.randn_like(x)
    return x.detach()


def median_seconds(work, repeats: int) -> float:
    # oneDNN picks and caches its kernels over the first calls; one warm-up was not enough.
    for _ in range(3):
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-f", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.image_size != 32:
        parser.error("the short-run net is defined for 32x32 images")
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    net = energy_net(args.n_f, 3)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999))
    data = torch.rand(args.batch, 3, 32, 32) * 2 - 1
    step_size = 1.0

    def chain():
        langevin(net, args.batch, 32, args.steps, step_size)

    def iteration():
        samples = langevin(net, args.batch, 32, args.steps, step_size)
        loss = net(samples).mean() - net(data + 0.03 * torch.randn_like(data)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    chain_s = median_seconds(chain, args.repeats)
    iteration_s = median_seconds(iteration, args.repeats)
    print(
        f"torch {torch.__version__} CPU, {args.threads} threads, n_f {args.n_f}, batch {args.batch}, "
        f"K {args.steps}, 32x32x3: Langevin batch {chain_s * 1e3:.0f} ms "
        f"({args.steps / chain_s:.1f} steps/s), training iteration {iteration_s * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
