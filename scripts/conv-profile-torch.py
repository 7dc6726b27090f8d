"""The per-layer convolution profile of `trainer/examples/conv_profile.rs`, in PyTorch on the
CPU: forward convolution, the transposed convolution of the input gradient and the weight
gradient per layer of the short-run net, with GFLOP/s.

    python3 scripts/conv-profile-torch.py [N_F [BATCH [THREADS]]]
"""
import sys
import time

import torch
import torch.nn.functional as F


def seconds(work, runs=11):
    """Median over `runs` after one warm-up, as the Rust example times."""
    work()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return sorted(times)[runs // 2]


def main():
    n_f = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    # (in, out, kernel, stride, padding, input side): ShortRunConfig's 32×32 net, as the example prints it.
    layers = [(3, n_f, 3, 1, 1, 32), (n_f, 2 * n_f, 4, 2, 1, 32), (2 * n_f, 4 * n_f, 4, 2, 1, 16),
              (4 * n_f, 8 * n_f, 4, 2, 1, 8), (8 * n_f, 1, 4, 1, 0, 4)]
    print(f"short-run net n_f {n_f}, batch {batch}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    forward_total = backward_total = weight_total = 0.0
    with torch.no_grad():
        for c_in, c_out, k, stride, padding, side in layers:
            x = torch.randn(batch, c_in, side, side)
            weight = torch.randn(c_out, c_in, k, k) * 0.1
            y = F.conv2d(x, weight, None, stride, padding)
            out_side = y.shape[2]
            extra = (side + 2 * padding) - ((out_side - 1) * stride + k)
            flop = 2.0 * batch * c_out * out_side * out_side * c_in * k * k
            forward = seconds(lambda: F.conv2d(x, weight, None, stride, padding))
            backward = seconds(lambda: F.conv_transpose2d(y, weight, None, stride, padding, extra))
            weight_grad = seconds(lambda: torch.ops.aten.convolution_backward(
                y, x, weight, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1, [False, True, False]))
            weight_total += weight_grad
            forward_total += forward
            backward_total += backward
            print(f"{c_in:>4} → {c_out:<4} k{k} s{stride} {side:>2} px   forward {forward * 1e3:7.2f} ms "
                  f"{flop / forward / 1e9:6.1f} GFLOP/s   input gradient {backward * 1e3:7.2f} ms "
                  f"{flop / backward / 1e9:6.1f} GFLOP/s   weight gradient {weight_grad * 1e3:7.2f} ms "
                  f"{flop / weight_grad / 1e9:6.1f} GFLOP/s")
    print(f"total: forward {forward_total * 1e3:.1f} ms, input gradient {backward_total * 1e3:.1f} ms, "
          f"weight gradient {weight_total * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
