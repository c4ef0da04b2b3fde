#!/usr/bin/env bash
# Regenerates the binary seeds of tests/fuzz/corpus_model with a built cmera (the TOML
# seeds of corpus_config and the description seeds of corpus_dataset, bytes that
# fuzz_dataset decodes, are kept by hand). Small files on
# purpose: libFuzzer mutates faster and reaches the validators' branches sooner.
# Usage: tests/fuzz/make_corpus.sh CMERA
set -euo pipefail
cmera="$(realpath "$1")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$W"
mpirun -n 1 "$cmera" generate ising1d --sites 16 --samples 400 --corr 0.5 --output d.h5 >/dev/null
printf '[data]\npath = "d.h5"\n[model]\nchi = [2, 2, 2]\n[train]\niterations = 4\nrestarts = 1\ncheckpoint_every = 2\n[output]\ndir = "out"\n' > c.toml
mpirun -n 1 "$cmera" train c.toml >/dev/null
mkdir -p "$here/corpus_model"
cp out/model.h5 "$here/corpus_model/model.h5"
cp "$(ls out/checkpoint-*.h5 | tail -n 1)" "$here/corpus_model/checkpoint.h5"
cp d.h5 "$here/corpus_model/dataset.h5"
ls -la "$here"/corpus_*
