#!/usr/bin/env bash
# Catalogue of bad inputs (README "Bad inputs", docs/bad-inputs.md): every case builds its
# bad input in a temporary directory, runs cmera under mpirun with a timeout and checks
# the documented exit status (never a signal, an abort or the timeout), exactly one
# `cmera: error:` line naming the file, key or value, and that the model and checkpoints
# already in the output directory are byte-identical afterwards. Dataset cases run at 1,
# 2 and 3 ranks and must give the same message at each. One table drives the checks and
# the generated doc (`--doc FILE`), so the two cannot drift; the trade-off is that every
# case is one bash function, which keeps inputs readable but the table terse.
# Usage: bad_inputs.sh CMERA SOURCE_DIR [--doc OUTPUT.md]; CMERA_CASES=REGEX runs only the
# cases whose name matches, CMERA_SKIP_CASES=REGEX skips those that match;
# CMERA_MAX_RANKS=P skips rank counts above P; CMERA_FIRST_RANK_COUNT=1 runs every case at
# the first rank count of its row only (the sanitizer suite: the rank-count agreement of
# the messages is the main suite's check, not a memory-safety one).
set -uo pipefail
cmera="$1"; src="$2"; doc="${4:-}"
[ "${3:-}" = "--doc" ] || doc=""
py=/usr/bin/python3
W=$(mktemp -d)
trap 'chmod -R u+w "$W" 2>/dev/null; rm -rf "$W"' EXIT
np=2  # rank count of the case being run
mpi() { timeout 60 mpirun --oversubscribe -n "$np" "$cmera" "$@"; }

# ---- fixtures: a valid dataset, config, trained model and checkpoints ----
export OMP_NUM_THREADS=1
mpirun --oversubscribe -n 2 "$cmera" generate ising1d --sites 16 --samples 400 --corr 0.5 \
  --seed 2 --output "$W/d.h5" >/dev/null || { echo "fixture: generate failed"; exit 1; }
config() {  # config [extra TOML appended to [train]]: a valid config writing to $W/out
  cat <<EOF
[data]
path = "$W/d.h5"
[model]
chi = [2, 2, 2]
[train]
iterations = 6
restarts = 1
checkpoint_every = 3
$*
[output]
dir = "$W/out"
EOF
}
config > "$W/good.toml"
mpirun --oversubscribe -n 2 "$cmera" train "$W/good.toml" >/dev/null &&
  mpirun --oversubscribe -n 2 "$cmera" train "$W/good.toml" -P model.chi=[2,3,2] \
    -P output.dir="$W/other" >/dev/null || { echo "fixture: train failed"; exit 1; }
mkdir -p "$W/out2" && cp "$W/out/model.h5" "$W/out2/model.h5"
# A grid dataset [S, 6, 6] and a grid model trained on it (docs/design-grid.md §5).
mpirun --oversubscribe -n 2 "$cmera" generate ising2d --size 6 --beta 0.3 --samples 100 \
  --seed 2 --output "$W/gridd.h5" >/dev/null &&
  mpirun --oversubscribe -n 2 "$cmera" train "$W/good.toml" -P data.path="$W/gridd.h5" \
    -P model.chi=[2,2] -P output.dir="$W/gout" >/dev/null || { echo "fixture: grid train failed"; exit 1; }
latest_ckpt() { ls "$1"/checkpoint-*.h5 | tail -n 1; }
protected=("$W"/out/* "$W/out2/model.h5" "$W"/gout/*)
sha256sum "${protected[@]}" > "$W/protected.sha"

# A dataset written by h5py: dataset_py PATH 'python expression for /configs'
dataset_py() { $py - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["configs"] = eval(sys.argv[2])
PY
}
train_data() { mpi train "$W/good.toml" -P data.path="$1" "${@:2}"; }
# Edits a copy of a cmera file with h5py and re-stamps its integrity block, as a file from
# another cmera version would be: h5edit SOURCE COPY 'python statement on h5py.File f'
h5edit() { cp "$1" "$2"
  $py -c 'import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "a") as f: exec(sys.argv[2])' "$2" "$3" &&
  $py "$src/tests/cli/restamp_integrity.py" "$2"; }
# Flips one byte in the middle of a copy: flip SOURCE COPY
flip() { cp "$1" "$2"
  $py -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1, 2); n = f.tell() // 2; f.seek(n); b = f.read(1); f.seek(n); f.write(bytes([b[0] ^ 0x5a]))' "$2"; }

# ---- the catalogue: name | ranks | exit status | fragment the message must contain | what ----
# Fragments use $W for the temporary directory; the doc shows it as /tmp/w.
cases=(
  "config_missing|2|2|nothere.toml: cannot read config file (No such file or directory)|config file does not exist"
  "config_syntax|2|2|bad.toml:3:7: TOML syntax error: Error while parsing table header|TOML syntax error"
  "config_unknown_key|2|2|unknown key 'model.chii'|unknown key"
  "config_unknown_section|2|2|unknown section [trian]|unknown section"
  "config_wrong_type|2|2|'train.iterations' must be an integer >= 0, got \"ten\"|wrong type"
  "config_missing_key|2|2|missing required key 'model.chi'|required key missing"
  "chi_empty|2|2|'model.chi' must be an array of integers >= 2 with at least 2 entries, got []|empty model.chi"
  "chi_too_small|2|2|'model.chi' must be an array of integers >= 2 with at least 2 entries, got [2, 1]|a chi entry < 2"
  "depth_too_large|2|2|N must be divisible by 2^depth = 2^5|depth too large for N"
  "chi_too_large|2|2|model.chi = [2, 2048, 2] with N = 16 needs about|model.chi beyond the node's memory"
  "top_too_small|2|2|depth 3 leaves 2 top sites for N = 16; the top needs >= 3|fewer than 3 top sites"
  "negative_iterations|2|2|'train.iterations' must be an integer >= 0, got -5|negative iterations"
  "unknown_optimizer|2|2|'train.optimizer' must be one of em, adam, got \"sgd\"|unknown optimizer"
  "output_dir_is_file|2|2|output.dir '$W/afile' is not a directory|output.dir is a file"
  "output_dir_not_writable|2|2|is not writable (Permission denied)|output.dir not writable"
  "data_missing|1 2 3|2|$W/nothere.h5: no such file|dataset missing"
  "data_not_hdf5|1 2 3|2|$W/text.h5: not an HDF5 file|dataset not HDF5"
  "data_truncated|1 2 3|2|$W/trunc.h5: truncated (|dataset truncated"
  "data_damaged|1 2 3|2|$W/damaged.h5: damaged: CRC-32|dataset with one byte changed"
  "data_foreign_truncated|1 2 3|2|$W/ftrunc.h5: cannot open HDF5 file for reading (truncated or damaged?)|truncated dataset written by h5py (no integrity block)"
  "data_no_configs|1 2 3|2|$W/noconf.h5: no /configs dataset (expected uint8 [samples, sites])|no /configs"
  "data_rank1|1 2 3|2|$W/rank1.h5: /configs is uint8 [16] (rank 1), expected uint8 [samples, sites]|/configs of rank 1"
  "data_rank3|1 2 3|2|$W/rank3.h5: /configs is uint8 [4, 4, 4], a grid dataset [S, Ly, Lx]; a chain model reads [samples, sites]|a grid dataset [S, Ly, Lx] given to eval of a chain model"
  "grid_too_small|1 2 3|2|depth 2 leaves a 1 x 1 top grid for a 4 x 4 lattice; the top needs at least 3 x 3 sites (use fewer layers) (dataset $W/g4.h5 is a 4 x 4 grid, Lx x Ly)|a grid dataset the model's depth does not fit"
  "grid_model_bad_layer|1 2|2|grid-bad.h5: dataset /model/layer_0/y/isometry is float64 [1, 1, 2, 2], expected float64 [1, 1, 2, 2, 2]|grid model with a wrong-shaped layer"
  "grid_model_unnormalized|1 2|2|grid-sum.h5: /model: a conditional of the grid's tables deviates from a sum of 1 by 1|grid model whose top does not sum to 1"
  "grid_chain_checkpoint|2|2|is a chain model (N = 16), expected a grid model|a chain checkpoint offered to a grid run"
  "grid_model_chain_data|2|2|d.h5: /configs is [400, 16] (samples, then one sample's shape), the model's grid needs [samples, Ly, Lx] = [400, 6, 6]|a grid model evaluated on a chain dataset"
  "grid_pair_distance|2|2|objective.pair_distances: distance 8 is outside 1..3 (half the 6 x 6 grid's longer side)|a grid pair distance beyond half the grid"
  "grid_pair_stride|2|2|objective.pair_stride = 7 is larger than the 6 x 6 grid's shorter side; use 1..6, or 0 for automatic|a grid pair stride beyond the grid's side"
  "grid_intermediate_steps|2|2|model.intermediate_chi has 2 entries, more than the 1 steps of a depth-1 model (dataset $W/gridd.h5 is a 6 x 6 grid, Lx x Ly)|more intermediate alphabets than the grid has steps"
  "grid_intermediate_too_large|2|2|model.chi = [2, 2], intermediate [40] on a 6 x 6 grid needs about|an intermediate alphabet whose kernel scratch exceeds the node's memory"
  "chain_intermediate|2|2|model.intermediate_chi applies to grids only; dataset|an intermediate alphabet for a chain"
  "grid_diagonal_distance|2|2|objective.pair_diagonal_distances: distance 4 is outside 1..3 (half the 6 x 6 grid's shorter side)|a diagonal pair distance beyond half the grid"
  "chain_diagonals|2|2|objective.pair_diagonal_distances applies to grids only;|diagonal pair terms for a chain"
  "grid_pair_joints|2|2|training with grid pair terms at chi = [2, 3, 3, 2] (the pair of|grid pair terms whose joints (chi^18 entries) exceed the node's memory"
  "grid_model_bad_intermediate|2|2|/model attribute intermediate_chi has 2 entries, expected depth = 1|a grid model whose intermediate alphabets do not match its depth"
  "data_dtype|1 2 3|2|$W/float.h5: /configs is float64 [40, 16] (rank 2), expected uint8 [samples, sites]|/configs not uint8"
  "data_alphabet|1 2 3|2|$W/values.h5: /configs[3, 5] = 7 is outside the alphabet 0..1|value outside the alphabet"
  "data_alphabet_attr|1 2 3|2|$W/attr.h5: alphabet attribute is 3 but model.chi[0] = 2|alphabet attribute differs from chi[0]"
  "data_zero_samples|1 2 3|2|$W/empty.h5: /configs has zero samples|zero samples"
  "data_size|1 2 3|2|lattice of 24 sites cannot be coarse-grained 4 times|N does not fit the model"
  "restart_truncated|2|2|checkpoint-trunc.h5: truncated (|truncated checkpoint"
  "restart_damaged|2|2|checkpoint-bad.h5: damaged: CRC-32|checkpoint with one byte changed"
  "restart_other_model|2|2|written for another config: model.chi|another model's checkpoint"
  "restart_format|2|2|checkpoint format version 99, this cmera reads|another checkpoint format version"
  "restart_optimizer_states|2|2|checkpoint-states.h5: optimizer_states = 1000000000000 is outside 0..16|a checkpoint claiming 10^12 optimizer tables"
  "model_truncated|2|2|model-trunc.h5: truncated (|truncated model (eval)"
  "model_damaged|2|2|model-bad.h5: damaged: CRC-32|model with one byte changed"
  "model_no_block|2|2|model-copy.h5: no cmera integrity block: not a cmera model file|model copied by h5py into a new file"
  "model_format|2|2|model-v7.h5: model format version 7, this cmera reads 2|another model format version"
  "model_vlen_strings|2|2|model-vlen.h5: attribute cmera_kind is a variable-length string; cmera files store fixed-length strings|a model relabelled by h5py (variable-length string)"
  "model_huge|2|2|model-huge.h5: /model geometry (N = 16, chi = [200, 200, 2]) needs|model geometry beyond the file's size"
  "model_is_dataset|2|2|d.h5: is a cmera dataset file, expected a model|a dataset given as model"
  "cli_unknown_subcommand|2|2|unknown command 'frobnicate' (expected one of generate, train, info, eval, sample|unknown subcommand"
  "cli_missing_argument|2|2|config is required (see cmera train --help)|missing argument"
  "cli_malformed_P|2|2|-P 'model.chi': expected section.key=value|malformed -P"
  "cli_P_unknown_key|2|2|-P: unknown key 'train.iters'|-P of an unknown key"
  "cli_negative_count|2|2|--count must be a positive integer, got -3|negative --count"
  "cli_negative_sites|2|2|--sites must be a positive integer, got -4|negative --sites"
  "cli_negative_distance|2|2|--max-distance must be >= 1, got -1|negative --max-distance"
  "too_many_ranks|7|2|7 MPI ranks for a lattice of 6 sites: use at most 6 ranks|more ranks than sites"
  "write_fails_checkpoint|2|74|No space left on device (simulated by CMERA_TEST_FAIL_WRITE)|full disk at a checkpoint"
  "write_fails_model|2|74|model.h5: writing failed: No space left on device|full disk at model.h5"
  "own_data_as_model|1 2|2|is also this command's input ($W/own1/model.h5)|data.path is output.dir/model.h5"
  "own_model_text|2|2|own2/model.h5 exists and cmera will not replace it: not written by cmera (no cmera integrity block)|a text file named model.h5 in output.dir"
  "own_model_foreign_hdf5|2|2|own3/model.h5 exists and cmera will not replace it: not written by cmera|a user's HDF5 file named model.h5 in output.dir"
  "own_model_other_config|2|2|it was trained with another config: model.chi = [2, 3, 2] (model.h5) vs [2, 2, 2] (this run)|another config's model.h5 in output.dir"
  "own_model_is_dir|2|2|own5/model.h5 is a directory; the output must be a file name|model.h5 in output.dir is a directory"
  "own_model_symlink|2|2|own6/model.h5 exists and is a symbolic link|model.h5 in output.dir is a symbolic link"
  "own_fresh_over_checkpoints|2|2|already holds checkpoints (newest: $W/out/checkpoint-00000006.h5); continue that run with --restart latest|a fresh train where checkpoints exist"
  "own_user_checkpoint_ahead|2|2|checkpoint-00000050.h5 was not written by the run being continued|a user's checkpoint-<n>.h5 ahead of the run being continued"
  "own_sample_over_model|1 2|2|m-copy.h5 is also this command's input|sample --output naming its own model"
  "own_sample_over_user_file|2|2|notes.txt exists and cmera will not replace it: not written by cmera|sample --output naming a user's file"
  "own_sample_other_params|2|2|s-prev.h5 exists and cmera will not replace it: it was written with other parameters|sample --output naming an earlier sample of other parameters"
  "own_generate_over_dataset|2|2|d.h5 exists and cmera will not replace it: it was written with other parameters|generate --output naming another dataset"
  "own_output_is_dir|2|2|$W/adir is a directory; the output must be a file name|generate --output naming a directory"
  "own_output_name_too_long|2|2|cannot be written (File name too long)|generate --output naming a path too long"
  "own_concurrent_train|2|2|is in use by another cmera train (host|a second train on an output.dir in use"
  "own_lock_symlink|2|2|cannot open the lock file $W/own9/.cmera.lock: Too many levels of symbolic links|output.dir/.cmera.lock is a link planted to a user's file"
  "own_checkpoint_name_huge|2|2|already holds checkpoints (newest: $W/own10/checkpoint-000000000000000001.h5)|checkpoint file names with 19 and 18 digits in output.dir"
  "own_output_no_dir|2|2|$W/nowhere/s.h5: its directory $W/nowhere does not exist|--output in a directory that does not exist"
  "restarts_too_many|2|2|'train.restarts' must be an integer in [1, 1000], got 100000|10^5 candidate starts"
  "restart_iterations_too_many|2|2|'train.restart_iterations' must be an integer in [0, 1000000], got 10000000|10^7 iterations per candidate"
  "sample_huge|2|74|s.h5: writing failed: No space left on device (the file needs 1.6e+07 MB)|sample --count beyond the disk (memory is bounded: samples are drawn and written in blocks)"
  "generate_huge|2|74|g.h5: writing failed: No space left on device (the file needs 1.6e+07 MB)|generate --samples beyond the disk (drawn and written in blocks)"
  "config_is_device|2|2|/dev/zero: not a regular file (a device); expected a TOML config file|config path is a device"
  "config_symlink_loop|2|2|loop.toml: cannot read config file (Too many levels of symbolic links)|config path is a symlink loop"
  "data_name_too_long|2|2|.h5: cannot open (File name too long)|data.path with a 300-byte name"
  "data_symlink_loop|2|2|$W/loop.h5: cannot open (Too many levels of symbolic links)|data.path is a symlink loop"
  "model_name_too_long|2|2|.h5: cannot open (File name too long)|model path with a 300-byte name (sample)"
  "model_symlink_loop|2|2|$W/loop.h5: cannot open (Too many levels of symbolic links)|model path is a symlink loop (eval)"
  "data_lzf|1 2 3|2|$W/lzf.h5: /configs is compressed with HDF5 filter 32000 ('lzf'), which this HDF5 library does not have|/configs compressed with a filter HDF5 lacks (h5py lzf)"
  "eval_alphabet_attr|2|2|$W/attr.h5: alphabet attribute is 3 but model.chi[0] = 2|alphabet attribute differs from chi[0] (eval)"
  "eval_alphabet|2|2|$W/values.h5: /configs[3, 5] = 7 is outside the alphabet 0..1|value outside the alphabet (eval)"
  "restart_empty|2|2|--restart must be 'latest' or a checkpoint file, got an empty string|--restart \"\""
  "max_hours_zero|2|2|--max-hours must be a finite number of hours > 0, got 0|--max-hours 0"
  "max_hours_nan|2|2|--max-hours must be a finite number of hours > 0, got nan|--max-hours nan"
  "pair_distances_duplicate|2|2|'objective.pair_distances' lists distance 4 twice|a pair distance listed twice"
  "pair_stride_too_large|2|2|objective.pair_stride = 1000000 is larger than the lattice (N = 16 sites)|pair stride beyond N"
  "pairs_off_with_distances|2|2|'objective.pair_distances' is set but 'objective.pairs' is false|pair distances with pairs = false"
  "data_is_fifo|2|2|$W/fifo.h5: is not a regular file (a device, FIFO or socket), expected an HDF5 file|data.path is a FIFO"
  "config_too_large|2|2|big.toml: 2097152 bytes is too large for a config file (at most 1 MiB)|a 2 MiB file given as config"
  "depth_huge|2|2|'model.depth' must be an integer in [1, 60], got 2000000000|model.depth = 2e9"
  "generate2d_huge|2|2|--samples 100000 of --size 46340 needs about|generate ising2d beyond the node's memory"
  "data_unwritten|1 2 3|2|$W/unwritten.h5: /configs [1000000000000, 16] is not fully written (HDF5 has stored none of it|/configs created by h5py but never written (10^12 samples of fill values)"
)

case_config_missing() { mpi train "$W/nothere.toml"; }
case_config_syntax() { printf '[data]\npath = "x.h5"\n[model\nchi = [2, 2]\n' > "$W/bad.toml"
  mpi train "$W/bad.toml"; }
case_config_unknown_key() { config | sed 's/^chi =/chii =/' > "$W/c.toml"; mpi train "$W/c.toml"; }
case_config_unknown_section() { { config; printf '[trian]\nseed = 2\n'; } > "$W/c.toml"
  mpi train "$W/c.toml"; }
case_config_wrong_type() { config 'iterations = "ten"' | grep -v '^iterations = 6' > "$W/c.toml"
  mpi train "$W/c.toml"; }
case_config_missing_key() { config | grep -v '^chi' > "$W/c.toml"; mpi train "$W/c.toml"; }
case_chi_empty() { mpi train "$W/good.toml" -P model.chi=[]; }
case_chi_too_small() { mpi train "$W/good.toml" -P model.chi=[2,1]; }
case_depth_too_large() { mpi train "$W/good.toml" -P model.depth=5; }
case_chi_too_large() { mpi train "$W/good.toml" -P model.chi=[2,2048,2]; }
case_top_too_small() { mpi train "$W/good.toml" -P model.chi=[2,2,2,2]; }
case_negative_iterations() { mpi train "$W/good.toml" -P train.iterations=-5; }
case_unknown_optimizer() { mpi train "$W/good.toml" -P train.optimizer=sgd; }
case_output_dir_is_file() { touch "$W/afile"; mpi train "$W/good.toml" -P output.dir="$W/afile"; }
case_output_dir_not_writable() {
  # Root ignores permission bits; sysfs refuses new files even to root.
  local dir=/sys
  [ "$(id -u)" -eq 0 ] || { dir="$W/ro"; mkdir -p "$dir"; chmod 555 "$dir"; }
  mpi train "$W/good.toml" -P output.dir="$dir"; }
case_data_missing() { train_data "$W/nothere.h5"; }
case_data_not_hdf5() { echo "not hdf5" > "$W/text.h5"; train_data "$W/text.h5"; }
case_data_truncated() { cp "$W/d.h5" "$W/trunc.h5"
  truncate -s $(( $(stat -c %s "$W/d.h5") / 2 )) "$W/trunc.h5"; train_data "$W/trunc.h5"; }
case_data_damaged() { flip "$W/d.h5" "$W/damaged.h5"; train_data "$W/damaged.h5"; }
case_data_foreign_truncated() { dataset_py "$W/ftrunc.h5" 'np.zeros((400, 16), np.uint8)'
  truncate -s $(( $(stat -c %s "$W/ftrunc.h5") / 2 )) "$W/ftrunc.h5"; train_data "$W/ftrunc.h5"; }
case_data_no_configs() { $py -c 'import sys, h5py; h5py.File(sys.argv[1], "w")["data"] = [[0, 1]]' \
  "$W/noconf.h5"; train_data "$W/noconf.h5"; }
case_data_rank1() { dataset_py "$W/rank1.h5" 'np.zeros(16, np.uint8)'; train_data "$W/rank1.h5"; }
case_data_rank3() { dataset_py "$W/rank3.h5" 'np.zeros((4, 4, 4), np.uint8)'
  mpi eval "$W/out/model.h5" --data "$W/rank3.h5"; }
case_grid_too_small() { dataset_py "$W/g4.h5" 'np.zeros((40, 4, 4), np.uint8)'; train_data "$W/g4.h5"; }
case_grid_model_bad_layer() {
  h5edit "$W/gout/model.h5" "$W/grid-bad.h5" 'del f["model/layer_0/y/isometry"]; f["model/layer_0/y/isometry"] = np.full((1, 1, 2, 2), 0.25)'
  mpi sample "$W/grid-bad.h5" --count 5 --output "$W/gs.h5"; }
case_grid_model_unnormalized() {
  h5edit "$W/gout/model.h5" "$W/grid-sum.h5" 'f["model/top"][...] = 2 * f["model/top"][...]'
  mpi sample "$W/grid-sum.h5" --count 5 --output "$W/gs.h5"; }
case_grid_chain_checkpoint() {
  mpi train "$W/good.toml" -P data.path="$W/gridd.h5" -P model.chi=[2,2] -P output.dir="$W/gout2" \
    --restart "$(latest_ckpt "$W/out")"; }
case_grid_model_chain_data() { mpi eval "$W/gout/model.h5" --data "$W/d.h5"; }
grid_train() { mpi train "$W/good.toml" -P data.path="$W/gridd.h5" -P model.chi=[2,2] -P output.dir="$W/gout3" "$@"; }
case_grid_pair_distance() { grid_train -P objective.pair_distances=[2,8]; }
case_grid_pair_stride() { grid_train -P objective.pair_stride=7; }
case_grid_intermediate_steps() { grid_train -P model.intermediate_chi=[3,3]; }
case_grid_intermediate_too_large() { grid_train -P model.intermediate_chi=[40]; }
case_grid_diagonal_distance() { grid_train -P objective.pair_diagonal_distances=[1,4]; }
case_grid_pair_joints() {
  mpi generate ising2d --size 32 --beta 0.3 --samples 20 --seed 2 --output "$W/grid32.h5" >/dev/null
  mpi train "$W/good.toml" -P data.path="$W/grid32.h5" -P "model.chi=[2,3,3,2]" \
    -P objective.pair_distances=[4,12] -P output.dir="$W/gout4"; }
case_chain_diagonals() { mpi train "$W/good.toml" -P objective.pair_diagonal_distances=[2] -P output.dir="$W/cdiag"; }
case_chain_intermediate() { mpi train "$W/good.toml" -P model.intermediate_chi=[3] -P output.dir="$W/cint"; }
case_grid_model_bad_intermediate() {
  h5edit "$W/gout/model.h5" "$W/grid-mid.h5" 'f["model"].attrs["intermediate_chi"] = np.array([3, 3], np.int32)'
  mpi sample "$W/grid-mid.h5" --count 5 --output "$W/gs.h5"; }
case_data_dtype() { dataset_py "$W/float.h5" 'np.zeros((40, 16))'; train_data "$W/float.h5"; }
case_data_alphabet() {  # found by the statistics pass, after the outputs are checked: a fresh output.dir
  dataset_py "$W/values.h5" 'np.where(np.arange(40 * 16).reshape(40, 16) == 3 * 16 + 5, 7, 0).astype(np.uint8)'
  train_data "$W/values.h5" -P output.dir="$W/scratch"; }
case_data_alphabet_attr() { h5edit "$W/d.h5" "$W/attr.h5" 'f["configs"].attrs["alphabet"] = 3'
  train_data "$W/attr.h5"; }
case_data_zero_samples() { dataset_py "$W/empty.h5" 'np.zeros((0, 16), np.uint8)'; train_data "$W/empty.h5"; }
case_data_size() { dataset_py "$W/n24.h5" 'np.zeros((40, 24), np.uint8)'
  train_data "$W/n24.h5" -P model.chi=[2,2,2,2,2]; }
case_restart_truncated() { local c; c=$(latest_ckpt "$W/out"); cp "$c" "$W/checkpoint-trunc.h5"
  truncate -s $(( $(stat -c %s "$c") / 2 )) "$W/checkpoint-trunc.h5"
  mpi train "$W/good.toml" --restart "$W/checkpoint-trunc.h5"; }
case_restart_damaged() { flip "$(latest_ckpt "$W/out")" "$W/checkpoint-bad.h5"
  mpi train "$W/good.toml" --restart "$W/checkpoint-bad.h5"; }
case_restart_other_model() { mpi train "$W/good.toml" --restart "$(latest_ckpt "$W/other")"; }
case_restart_format() {
  h5edit "$(latest_ckpt "$W/out")" "$W/checkpoint-v99.h5" 'f.attrs["checkpoint_format_version"] = np.int64(99)'
  mpi train "$W/good.toml" --restart "$W/checkpoint-v99.h5"; }
case_restart_optimizer_states() {
  h5edit "$(latest_ckpt "$W/out")" "$W/checkpoint-states.h5" 'f.attrs["optimizer_states"] = np.int64(10**12)'
  mpi train "$W/good.toml" --restart "$W/checkpoint-states.h5"; }
case_model_truncated() { cp "$W/out/model.h5" "$W/model-trunc.h5"
  truncate -s $(( $(stat -c %s "$W/out/model.h5") / 2 )) "$W/model-trunc.h5"
  mpi eval "$W/model-trunc.h5" --data "$W/d.h5"; }
case_model_damaged() { flip "$W/out/model.h5" "$W/model-bad.h5"; mpi eval "$W/model-bad.h5" --data "$W/d.h5"; }
case_model_no_block() { $py -c 'import sys, h5py
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "w") as b:
    for k in a: a.copy(a[k], b, k)
    b.attrs.update(a.attrs)' "$W/out/model.h5" "$W/model-copy.h5"
  mpi eval "$W/model-copy.h5" --data "$W/d.h5"; }
case_model_format() { h5edit "$W/out/model.h5" "$W/model-v7.h5" 'f.attrs["format_version"] = np.int32(7)'
  mpi sample "$W/model-v7.h5" --count 10 --output "$W/s.h5"; }
case_model_vlen_strings() { h5edit "$W/out/model.h5" "$W/model-vlen.h5" 'f.attrs["cmera_kind"] = "model"'
  mpi eval "$W/model-vlen.h5" --data "$W/d.h5"; }
case_model_huge() {
  h5edit "$W/out/model.h5" "$W/model-huge.h5" 'f["model"].attrs["chi"] = np.int32([200, 200, 2])'
  mpi eval "$W/model-huge.h5" --data "$W/d.h5"; }
case_model_is_dataset() { mpi eval "$W/d.h5" --data "$W/d.h5"; }
case_cli_unknown_subcommand() { mpi frobnicate; }
case_cli_missing_argument() { mpi train; }
case_cli_malformed_P() { mpi train "$W/good.toml" -P model.chi; }
case_cli_P_unknown_key() { mpi train "$W/good.toml" -P train.iters=3; }
case_cli_negative_count() { mpi sample "$W/out/model.h5" --count -3 --output "$W/s.h5"; }
case_cli_negative_sites() { mpi generate ising1d --sites -4 --samples 10 --corr 0.5 --output "$W/g.h5"; }
case_cli_negative_distance() { mpi eval "$W/out/model.h5" --data "$W/d.h5" --max-distance -1; }
case_too_many_ranks() { dataset_py "$W/n6.h5" 'np.zeros((40, 6), np.uint8)'
  train_data "$W/n6.h5" -P model.chi=[2,2]; }
case_write_fails_checkpoint() {
  CMERA_TEST_FAIL_WRITE=checkpoint- mpi train "$W/good.toml" --restart latest -P train.iterations=9; }
case_write_fails_model() { CMERA_TEST_FAIL_WRITE=model.h5 mpi train "$W/good.toml" -P output.dir="$W/out2"; }
case_restarts_too_many() { mpi train "$W/good.toml" -P train.restarts=100000; }
case_restart_iterations_too_many() { mpi train "$W/good.toml" -P train.restart_iterations=10000000; }
case_sample_huge() { mpi sample "$W/out/model.h5" --count 1000000000000 --output "$W/s.h5"; }
case_generate_huge() {
  mpi generate ising1d --sites 16 --samples 1000000000000 --corr 0.5 --output "$W/g.h5"; }
case_config_is_device() { mpi train /dev/zero; }
case_config_symlink_loop() { ln -sfn loop.toml "$W/loop.toml"; mpi train "$W/loop.toml"; }
long_name() { printf "$W/%0300d.h5" 0; }
case_data_name_too_long() { train_data "$(long_name)"; }
case_data_symlink_loop() { ln -sfn loop.h5 "$W/loop.h5"; train_data "$W/loop.h5"; }
case_model_name_too_long() { mpi sample "$(long_name)" --count 10 --output "$W/s.h5"; }
case_model_symlink_loop() { ln -sfn loop.h5 "$W/loop.h5"; mpi eval "$W/loop.h5" --data "$W/d.h5"; }
case_data_lzf() { $py -c 'import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f: f.create_dataset("configs", data=np.zeros((40, 16), np.uint8), compression="lzf")' \
  "$W/lzf.h5"; train_data "$W/lzf.h5"; }
case_eval_alphabet_attr() { h5edit "$W/d.h5" "$W/attr.h5" 'f["configs"].attrs["alphabet"] = 3'
  mpi eval "$W/out/model.h5" --data "$W/attr.h5"; }
case_eval_alphabet() {
  dataset_py "$W/values.h5" 'np.where(np.arange(40 * 16).reshape(40, 16) == 3 * 16 + 5, 7, 0).astype(np.uint8)'
  mpi eval "$W/out/model.h5" --data "$W/values.h5"; }
case_restart_empty() { mpi train "$W/good.toml" --restart ""; }
case_max_hours_zero() { mpi train "$W/good.toml" --max-hours 0; }
case_max_hours_nan() { mpi train "$W/good.toml" --max-hours nan; }
case_pair_distances_duplicate() { mpi train "$W/good.toml" -P objective.pair_distances=[2,4,4]; }
case_pair_stride_too_large() { mpi train "$W/good.toml" -P objective.pair_stride=1000000; }
case_pairs_off_with_distances() {
  mpi train "$W/good.toml" -P objective.pairs=false -P objective.pair_distances=[2,4]; }
case_data_is_fifo() { rm -f "$W/fifo.h5"; mkfifo "$W/fifo.h5"; train_data "$W/fifo.h5"; }
case_config_too_large() { head -c 2097152 /dev/zero > "$W/big.toml"; mpi train "$W/big.toml"; }
case_depth_huge() { mpi train "$W/good.toml" -P model.depth=2000000000; }
case_data_unwritten() { $py -c 'import sys, h5py
with h5py.File(sys.argv[1], "w") as f: f.create_dataset("configs", (10**12, 16), "u1", chunks=(4096, 16))' \
  "$W/unwritten.h5"; train_data "$W/unwritten.h5"; }
case_generate2d_huge() {
  mpi generate ising2d --size 46340 --beta critical --samples 100000 --output "$W/g2.h5"; }

# The user's files a case sets up must come out byte-identical: protect FILE...
protect() { sha256sum "$@" >> "$W/case.sha"; }
case_own_data_as_model() { mkdir -p "$W/own1"; cp "$W/d.h5" "$W/own1/model.h5"; protect "$W/own1/model.h5"
  train_data "$W/own1/model.h5" -P output.dir="$W/own1"; }
case_own_model_text() { mkdir -p "$W/own2"; echo "my notes" > "$W/own2/model.h5"; protect "$W/own2/model.h5"
  mpi train "$W/good.toml" -P output.dir="$W/own2"; }
case_own_model_foreign_hdf5() { mkdir -p "$W/own3"; dataset_py "$W/own3/model.h5" 'np.zeros((4, 16), np.uint8)'
  protect "$W/own3/model.h5"; mpi train "$W/good.toml" -P output.dir="$W/own3"; }
case_own_model_other_config() { mkdir -p "$W/own4"; cp "$W/other/model.h5" "$W/own4/model.h5"
  protect "$W/own4/model.h5"; mpi train "$W/good.toml" -P output.dir="$W/own4"; }
case_own_model_is_dir() { mkdir -p "$W/own5/model.h5"; mpi train "$W/good.toml" -P output.dir="$W/own5"; }
case_own_model_symlink() { mkdir -p "$W/own6"; ln -sf "$W/d.h5" "$W/own6/model.h5"
  mpi train "$W/good.toml" -P output.dir="$W/own6"; }
case_own_fresh_over_checkpoints() { mpi train "$W/good.toml"; }
case_own_user_checkpoint_ahead() { mkdir -p "$W/own7"; cp "$W"/out/checkpoint-*.h5 "$W/own7/"
  echo "mine" > "$W/own7/checkpoint-00000050.h5"; protect "$W"/own7/checkpoint-*.h5
  mpi train "$W/good.toml" -P output.dir="$W/own7" -P train.iterations=60 --restart latest; }
case_own_sample_over_model() { cp "$W/out/model.h5" "$W/m-copy.h5"; protect "$W/m-copy.h5"
  mpi sample "$W/m-copy.h5" --count 10 --output "$W/m-copy.h5"; }
case_own_sample_over_user_file() { echo "keep me" > "$W/notes.txt"; protect "$W/notes.txt"
  mpi sample "$W/out/model.h5" --count 10 --output "$W/notes.txt"; }
case_own_sample_other_params() { [ -e "$W/s-prev.h5" ] ||
    mpi sample "$W/out/model.h5" --count 10 --seed 1 --output "$W/s-prev.h5" >/dev/null
  protect "$W/s-prev.h5"; mpi sample "$W/out/model.h5" --count 10 --seed 2 --output "$W/s-prev.h5"; }
case_own_generate_over_dataset() { protect "$W/d.h5"; mpi generate ising1d --sites 16 --samples 400 --corr 0.9 --output "$W/d.h5"; }
case_own_output_is_dir() { mkdir -p "$W/adir"
  mpi generate ising1d --sites 16 --samples 40 --corr 0.5 --output "$W/adir"; }
case_own_output_name_too_long() {
  mpi generate ising1d --sites 16 --samples 40 --corr 0.5 --output "$W/$(printf 'x%.0s' {1..300}).h5"; }
case_own_concurrent_train() {  # the first run holds the lock while it sits in a checkpoint write
  rm -rf "$W/own8"; mkdir -p "$W/own8"
  CMERA_TEST_CHECKPOINT_DELAY=4 timeout 60 mpirun --oversubscribe -n 2 "$cmera" train "$W/good.toml" \
    -P output.dir="$W/own8" > "$W/own8.log" 2>&1 &
  local first=$! k
  for k in $(seq 300); do ls "$W"/own8/*.tmp.* >/dev/null 2>&1 && break; sleep 0.1; done
  mpi train "$W/good.toml" -P output.dir="$W/own8"; local rc=$?
  # The first run is not disturbed: it finishes with its model.
  wait $first && [ -s "$W/own8/model.h5" ] || echo "cmera: error: the first run failed" >&2
  return $rc; }
case_own_lock_symlink() { mkdir -p "$W/own9"; echo "precious" > "$W/precious.txt"
  ln -sfn "$W/precious.txt" "$W/own9/.cmera.lock"; protect "$W/precious.txt"
  mpi train "$W/good.toml" -P output.dir="$W/own9"; }
case_own_checkpoint_name_huge() { mkdir -p "$W/own10"
  echo x > "$W/own10/checkpoint-99999999999999999999.h5"; echo y > "$W/own10/checkpoint-000000000000000001.h5"
  mpi train "$W/good.toml" -P output.dir="$W/own10"; }
case_own_output_no_dir() { mpi sample "$W/out/model.h5" --count 10 --output "$W/nowhere/s.h5"; }

# ---- run ----
failures=0
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }
declare -A message
for row in "${cases[@]}"; do
  IFS='|' read -r name ranks status fragment what <<< "$row"
  [[ "$name" =~ ${CMERA_CASES:-.} ]] || continue
  [ -n "${CMERA_SKIP_CASES:-}" ] && [[ "$name" =~ $CMERA_SKIP_CASES ]] && continue
  [ "${CMERA_FIRST_RANK_COUNT:-0}" = 1 ] && ranks=${ranks%% *}
  first=""
  before=$failures
  for np in $ranks; do
    [ "$np" -le "${CMERA_MAX_RANKS:-99}" ] || continue
    "case_$name" > "$W/stdout" 2> "$W/stderr"
    rc=$?
    errors=$(grep -c '^cmera: error: ' "$W/stderr")
    line=$(grep -m1 '^cmera: error: ' "$W/stderr")
    [ "$rc" -eq "$status" ] || fail "$name" "np $np: exit status $rc, expected $status"
    [ "$rc" -lt 124 ] || fail "$name" "np $np: killed by a signal or the timeout (status $rc)"
    [ "$errors" -eq 1 ] || fail "$name" "np $np: $errors 'cmera: error:' lines, expected 1"
    [[ "$line" == *"$fragment"* ]] || fail "$name" "np $np: message lacks '$fragment'"
    if grep -qE 'MPI_ABORT|internal error|Signal:|Segmentation' "$W/stderr"; then
      fail "$name" "np $np: abort or crash"
    fi
    sha256sum --quiet -c "$W/protected.sha" >/dev/null 2>&1 ||
      fail "$name" "np $np: a pre-existing model or checkpoint changed"
    if [ -e "$W/case.sha" ]; then
      sha256sum --quiet -c "$W/case.sha" >/dev/null 2>&1 || fail "$name" "np $np: a user's file changed"
      rm -f "$W/case.sha"
    fi
    ! ls "$W"/out/*.tmp.* "$W"/out2/*.tmp.* >/dev/null 2>&1 ||
      fail "$name" "np $np: temporary file left behind"
    [ -z "$first" ] && first="$line"
    [ "$line" = "$first" ] || fail "$name" "np $np: message differs from np ${ranks%% *}: $line"
    if [ "$rc" -ne "$status" ] || [ "$errors" -ne 1 ] || [[ "$line" != *"$fragment"* ]]; then
      sed 's/^/    /' "$W/stderr" | head -n 20
    fi
  done
  message[$name]="${first//$W//tmp/w}"
  [ "$failures" -eq "$before" ] && echo "ok  $name ($ranks ranks): ${message[$name]}"
done

if [ -n "$doc" ]; then
  {
    echo "# Bad inputs: the catalogue"
    echo
    echo "Generated by \`bash tests/cli/bad_inputs.sh build/bin/cmera . --doc docs/bad-inputs.md\`;"
    echo "the same script is the CTest \`cli_bad_inputs\`, which checks for every case the exit"
    echo "status, exactly one \`cmera: error:\` line containing the fragment, no signal, abort or"
    echo "hang (60 s timeout), and that the model and checkpoints already in \`output.dir\` are"
    echo "byte-identical afterwards (sha256). Cases with ranks \`1 2 3\` run at each rank count"
    echo "and give the same message. \`/tmp/w\` stands for the test's temporary directory."
    echo
    echo "| case | what is wrong | ranks | exit | message (stderr, rank 0) |"
    echo "|---|---|---|---|---|"
    for row in "${cases[@]}"; do
      IFS='|' read -r name ranks status fragment what <<< "$row"
      printf '| `%s` | %s | %s | %s | `` %s `` |\n' "$name" "$what" "$ranks" "$status" \
        "${message[$name]//|/\\|}"
    done
  } > "$doc"
  echo "wrote $doc"
fi
echo "${#cases[@]} cases, $failures failures"
[ "$failures" -eq 0 ]
