"""Cross-language check of the command line's outputs.

Writes a tiny MNIST-format dataset (gzipped IDX) with numpy, runs `distill kip` on it,
then reads distilled.safetensors with nothing but the safetensors specification
(8-byte little-endian header length, JSON header, raw little-endian data) and numpy,
and checks shapes, dtypes, metadata and that the pixel-space images are plausible.

usage: python3 check_cli_outputs.py CLI_COMMAND...   (e.g. dotnet path/to/distill.dll)
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def write_idx(directory, prefix, images, labels):
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), 28, 28))
        f.write(images.astype(np.uint8).tobytes())
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)))
        f.write(labels.astype(np.uint8).tobytes())


def read_safetensors(path):
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=dtypes[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors, metadata


def main():
    cli = sys.argv[1:]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        data = os.path.join(root, "tiny-mnist")
        os.makedirs(data)
        templates = rng.integers(0, 256, size=(10, 28, 28))
        for prefix, n in (("train", 200), ("t10k", 100)):
            labels = np.arange(n) % 10
            noise = rng.integers(-40, 40, size=(n, 28, 28))
            write_idx(data, prefix, np.clip(templates[labels] + noise, 0, 255), labels)
        out = os.path.join(root, "run")
        subprocess.run(cli + ["kip", "--data", data, "--ipc", "1", "--steps", "5", "--target-batch", "100",
                              "--eval-every", "0", "--out", out], check=True)

        tensors, metadata = read_safetensors(os.path.join(out, "distilled.safetensors"))
        assert tensors["images"].shape == (10, 1, 28, 28), tensors["images"].shape
        assert tensors["images"].dtype == np.float32
        assert tensors["images_pixels"].shape == (10, 1, 28, 28)
        assert tensors["labels"].shape == (10, 10)
        assert sorted(tensors["classes"].tolist()) == list(range(10))
        assert metadata["kernel.kind"] == "ntk" and metadata["kernel.depth"] == "1", metadata
        # Five small Adam steps from real images keep pixels near [0, 1].
        pixels = tensors["images_pixels"]
        assert -0.5 < pixels.min() and pixels.max() < 1.5, (pixels.min(), pixels.max())
        summary = json.load(open(os.path.join(out, "summary.json")))
        assert summary["steps"] == 5 and 0.0 <= summary["test_accuracy"] <= 1.0, summary
        print(f"python check: distilled.safetensors read with numpy; test_accuracy={summary['test_accuracy']:.3f}")


if __name__ == "__main__":
    main()
