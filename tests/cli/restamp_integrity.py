#!/usr/bin/env python3
"""Re-stamps cmera's integrity block after a test edited a cmera file in place with h5py.

A second implementation of the block of include/cmera/integrity.hpp (the first 512 bytes:
"CMERA-INTEGRITY 1", the file length, zlib's CRC-32 of every later byte), so the tests
that use it also check that cmera's reader accepts a block it did not write itself.
Usage: restamp_integrity.py FILE...
"""
import sys
import zlib

BLOCK = 512

for path in sys.argv[1:]:
    with open(path, "r+b") as f:
        data = f.read()
        if not data.startswith(b"CMERA-INTEGRITY 1\n"):
            sys.exit(f"{path}: no cmera integrity block to re-stamp")
        record = f"CMERA-INTEGRITY 1\nbytes {len(data)}\ncrc32 {zlib.crc32(data[BLOCK:]):08x}\n"
        f.seek(0)
        f.write(record.encode().ljust(BLOCK, b"\0"))
