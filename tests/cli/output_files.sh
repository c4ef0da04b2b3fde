#!/usr/bin/env bash
# Output files respect the user's umask, land only inside output.dir (or the named
# --output), and paths from configs never reach a shell: under umask 027 every file and
# directory cmera creates must be mode 0640 / 0750; a train run from an empty working
# directory must create nothing outside output.dir; an output.dir full of shell
# metacharacters must become exactly that directory and run nothing. The source is also
# checked for shell-spawning calls (system, popen, exec*), the cheap guarantee behind it.
set -euo pipefail
cmera="$1"; src="$2"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
run() { mpirun --oversubscribe -n 2 "$cmera" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

if grep -rnE '\b(system|popen|execlp?|execvp?e?|posix_spawnp?)[[:space:]]*\(' "$src/src" "$src/include"; then
  fail "cmera source spawns processes or shells"
fi

umask 027
mkdir "$W/cwd" && cd "$W/cwd"
run generate ising1d --sites 16 --samples 200 --corr 0.5 --output "$W/d.h5" >/dev/null
odd='out; touch pwned $(touch pwned2) `touch pwned3` | touch pwned4 & '"'"'*?'
cat > "$W/c.toml" <<EOF
[data]
path = "$W/d.h5"
[model]
chi = [2, 2, 2]
[train]
iterations = 4
restarts = 1
checkpoint_every = 2
[output]
dir = "$W/runs/$odd"
EOF
run train "$W/c.toml" >/dev/null
run sample "$W/runs/$odd/model.h5" --count 5 --output "$W/s.h5" >/dev/null

[ -d "$W/runs/$odd" ] || fail "output.dir '$odd' was not created under that exact name"
[ "$(ls "$W/runs" | wc -l)" -eq 1 ] || fail "more than one directory in runs/: $(ls "$W/runs")"
[ -z "$(find "$W" -name 'pwned*')" ] || fail "a shell ran: $(find "$W" -name 'pwned*')"
[ -z "$(ls -A "$W/cwd")" ] || fail "files created outside output.dir: $(ls -A "$W/cwd")"
ls "$W/runs/$odd/model.h5" "$W/runs/$odd"/checkpoint-*.h5 >/dev/null ||
  fail "model.h5 or checkpoints missing in output.dir"

checked=0
while IFS= read -r -d '' f; do
  mode=$(stat -c %a "$f")
  if [ -d "$f" ]; then want=750; else want=640; fi
  [ "$mode" = "$want" ] || fail "$f has mode $mode, expected $want under umask 027"
  checked=$((checked + 1))
done < <(find "$W/d.h5" "$W/s.h5" "$W/runs" -mindepth 0 -print0)
echo "ok: $checked files and directories created with the umask (0640/0750), none outside" \
     "output.dir, no shell run for output.dir = '$odd'"
