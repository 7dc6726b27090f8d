#!/usr/bin/env python3
"""PyTorch reference for `trainer bench`: times, in PyTorch eager on the CPU or a CUDA GPU, the
nets, chains and training iterations that `trainer bench` timed, from the JSON description it
writes (`--reference-spec FILE`; `trainer bench --torch python3` runs this script itself and
prints the ratios):

  short_run  a K-step Langevin batch from uniform noise, x += s*(grad f - x/sigma^2) + eta*N,
             with autograd for the input gradient (the authors' code), and one training
             iteration (that chain, then Adam on mean f(samples) - mean f(data + sigma*N));
  cascade    every grid's chain of the multigrid cascade;
  meg        one MEG iteration: a generator + statistics-net step on mean E(G(z)) + L_H, then
             n_phi energy steps on mean E(x) - mean E(G(z)) + lambda * penalty(grad_x E(x)),
             the penalty's parameter gradient by double backward.

    python3 scripts/bench-torch.py spec.json [--device cpu|cuda] [--repeats 3] [--json]

Needs torch (`pip install torch`); not part of the tests. Threads: all cores on the CPU, as
burn's flex backend uses them. Times are medians after warm-up runs.
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Dense(nn.Module):
    """Linear layer on the flattened input, reshaped to (C, H, W) or (out, 1, 1)."""

    def __init__(self, in_features, out_features, bias, reshape):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.shape = reshape or [out_features, 1, 1]

    def forward(self, x):
        return self.linear(x.flatten(1)).view(x.shape[0], *self.shape)


def activation(spec):
    kind = spec["kind"]
    if kind == "identity":
        return nn.Identity()
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky_relu":
        return nn.LeakyReLU(spec["slope"])
    if kind == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {kind}")


def build(stack):
    """An nn.Sequential from a StackSpec: operation, optional batch-statistics BatchNorm, activation."""
    c, h, w = stack["input"]
    layers = []
    for layer in stack["layers"]:
        op = layer["op"]
        if op == "conv":
            k, s, p = layer["kernel"], layer["stride"], layer["padding"]
            layers.append(nn.Conv2d(c, layer["out_channels"], k, s, p, bias=layer["bias"]))
            c, h, w = layer["out_channels"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif op == "conv_transpose":
            k, s, p, op_ = layer["kernel"], layer["stride"], layer["padding"], layer["output_padding"]
            layers.append(nn.ConvTranspose2d(c, layer["out_channels"], k, s, p, op_, bias=layer["bias"]))
            c, h, w = layer["out_channels"], (h - 1) * s - 2 * p + k + op_, (w - 1) * s - 2 * p + k + op_
        elif op == "dense":
            layers.append(Dense(c * h * w, layer["out_features"], layer["bias"], layer["reshape"]))
            c, h, w = layer["reshape"] or [layer["out_features"], 1, 1]
        else:
            raise ValueError(f"unknown operation {op}")
        if layer["norm"] is not None:
            layers.append(nn.BatchNorm2d(c, eps=layer["norm"]["eps"]))
        layers.append(activation(layer["act"]))
    return nn.Sequential(*layers)


def value(net, x):
    """Per-sample output, summed over whatever the last layer leaves."""
    return net(x).flatten(1).sum(1)


def langevin(net, sign, batch, shape, chain, device):
    """The chain from uniform noise; `sign` is +1 when the net's output is log p, -1 for an energy."""
    s, eta, sigma = chain["step_size"], chain["noise"], chain["reference_sigma"]
    x = torch.empty(batch, *shape, device=device).uniform_(-1.0, 1.0)
    for _ in range(chain["steps"]):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(sign * value(net, x).sum(), [x])
        with torch.no_grad():
            drift = grad if sigma is None else grad - x / sigma**2
            x = x + s * drift + eta * torch.randn_like(x)
            if chain["clip"] is not None:
                x = x.clamp(*chain["clip"])
    return x.detach()


def adam(params, settings):
    return torch.optim.Adam(params, lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]), eps=settings["eps"])


def median_seconds(work, repeats, device):
    def run():
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # oneDNN and cuDNN pick and cache their kernels over the first calls; one warm-up was not enough.
    for _ in range(3):
        run()
    times = sorted(run() for _ in range(repeats))
    return times[len(times) // 2]


def peak_bytes(work, device):
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    work()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def short_run(spec, repeats, device):
    net = build(spec["net"]).to(device)
    optimiser = adam(net.parameters(), spec["adam"])
    batch, shape = spec["batch"], spec["net"]["input"]
    data = torch.rand(batch * 4, *shape, device=device) * 2 - 1

    def chain():
        return langevin(net, 1.0, batch, shape, spec["langevin"], device)

    def iteration():
        samples = chain()
        observed = data[torch.randint(0, data.shape[0], (batch,), device=device)]
        observed = observed + spec["data_noise"] * torch.randn_like(observed)
        loss = value(net, samples).mean() - value(net, observed).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return {
        "langevin_s": median_seconds(chain, repeats, device),
        "iteration_s": median_seconds(iteration, repeats, device),
        "sampling_peak_bytes": peak_bytes(chain, device),
        "training_peak_bytes": peak_bytes(iteration, device),
    }


def cascade(spec, repeats, device):
    sign = 1.0 if spec["polarity"] == "negative_energy" else -1.0
    grids = []
    for grid in spec["grids"]:
        net = build(grid).to(device)
        grids.append(median_seconds(lambda: langevin(net, sign, spec["batch"], grid["input"], spec["langevin"], device), repeats, device))
    return {"grids_s": grids}


def meg(spec, repeats, device):
    nets = {name: build(stack).to(device) for name, stack in spec["nets"].items()}
    energy, generator, head = nets["energy"], nets["generator"], nets["statistics_head"]
    trunk = nets.get("statistics_trunk")
    batch, d = spec["batch"], spec["latent"]
    shape = spec["nets"]["energy"]["input"]
    data = torch.rand(batch * 4, *shape, device=device) * 2 - 1
    g_params = [p for name, net in nets.items() if name != "energy" for p in net.parameters()]
    g_optimiser, e_optimiser = adam(g_params, spec["adam"]), adam(energy.parameters(), spec["adam"])

    def statistics(x, z):
        features = trunk(x).view(batch, d) if trunk is not None else x.flatten(1)
        return value(head, torch.cat([features, z], 1).view(batch, -1, 1, 1))

    def iteration():
        z = torch.randn(batch, d, device=device)
        shuffled = z[torch.randperm(batch, device=device)]
        generated = generator(z.view(batch, d, 1, 1))
        entropy = 0.5 * (F.softplus(-statistics(generated, z)).mean() + F.softplus(statistics(generated, shuffled)).mean())
        g_optimiser.zero_grad()
        (value(energy, generated).mean() + entropy).backward()
        g_optimiser.step()
        for _ in range(spec["energy_steps"]):
            real = data[torch.randint(0, data.shape[0], (batch,), device=device)].requires_grad_(True)
            with torch.no_grad():
                fake = generator(torch.randn(batch, d, 1, 1, device=device))
            e_real = value(energy, real)
            (grad,) = torch.autograd.grad(e_real.sum(), [real], create_graph=True)
            squared = grad.square()
            penalty = squared.sum(1).mean() if spec["penalty"] == "channel" else squared.sum() / batch
            loss = e_real.mean() - value(energy, fake).mean() + spec["lambda"] * penalty
            e_optimiser.zero_grad()
            loss.backward()
            e_optimiser.step()

    return {"iteration_s": median_seconds(iteration, repeats, device), "training_peak_bytes": peak_bytes(iteration, device)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="JSON written by trainer bench --reference-spec")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA (default: exact fp32, as ours)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for trainer bench --torch)")
    args = parser.parse_args()
    with open(args.spec) as file:
        spec = json.load(file)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
    run = {"short_run": short_run, "cascade": cascade, "meg": meg}[spec["kind"]]
    result = run(spec, max(1, args.repeats), device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    result["describe"] = f"torch {torch.__version__} eager, {where}{', TF32' if args.tf32 else ''}"
    if args.json:
        print(json.dumps(result))
    else:
        print(result["describe"])
        for key, value_ in result.items():
            if key != "describe":
                print(f"  {key}: {value_}")


if __name__ == "__main__":
    main()
