#!/usr/bin/env bash
# Benchmarks reported in README.md: start-up of `cargo xtask`, a cold compile, parsing a large
# Packer log as a stream, and local builds against the stand-in. Run from the repository:
#   bash xtask/bench.sh
# `bash xtask/bench.sh local` runs only the local builds.
# Uses hyperfine when installed (Debian: `apt-get install hyperfine`), else repeats by hand.
# Writes only below target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"

time_it() { # NAME RUNS COMMAND: mean wall time of the shell command COMMAND over RUNS runs
    local name=$1 runs=$2 command=$3
    if command -v hyperfine >/dev/null; then
        hyperfine --style basic ${HYPERFINE_OPTIONS:-} --warmup 1 --runs "$runs" \
            --export-json "$out/$name.json" "$command" | grep -E "Time|Range"
    else
        local start end
        start=$(date +%s%N)
        for _ in $(seq "$runs"); do sh -c "$command" >/dev/null 2>&1; done
        end=$(date +%s%N)
        echo "  mean: $(((end - start) / runs / 1000000)) ms over $runs runs"
    fi
}

if [ "${1:-}" != local ]; then
echo "== cold compile (debug, the whole workspace, from an empty target folder)"
rm -rf "$out/cold"
start=$(date +%s%N)
CARGO_TARGET_DIR="$out/cold" cargo build --quiet --package xtask
echo "  $((($(date +%s%N) - start) / 1000000)) ms"
rm -rf "$out/cold"

cargo build --quiet --package xtask
echo "== start-up: \`cargo xtask help\` (through cargo, as users run it)"
time_it startup-cargo 20 "cargo xtask help"
echo "== start-up: the binary alone, \`xtask help\`"
HYPERFINE_OPTIONS=--shell=none time_it startup-binary 50 "target/debug/xtask help"

echo "== parsing a large Packer log as a stream (\`xtask ami-ids\`)"
log="$out/large-packer.log"
if [ ! -f "$log" ]; then
    golden=xtask/tests/data/packer-1.6.6-ebs-success.log
    {
        head -n 20 "$golden"
        # Provisioning output is the bulk of a real log: two million lines of it.
        line=$(grep -m1 ',ui,message,' "$golden")
        yes "$line" | head -n 2000000 || true # `yes` ends by SIGPIPE
        tail -n +21 "$golden"
    } >"$log"
fi
echo "  $(wc -l <"$log") lines, $(($(stat -c %s "$log") / 1048576)) MiB"
echo '{}' >"$out/registry.json"
cargo build --quiet --release --package xtask
time_it parse-log 5 "target/release/xtask ami-ids $log --registry $out/registry.json"
/usr/bin/time -f "  peak memory: %M KiB" target/release/xtask ami-ids "$log" --registry "$out/registry.json" >/dev/null

fi

cargo build --quiet --package xtask
echo "== local builds against the stand-in (a temporary copy of the repository)"
copy=$(mktemp -d)
xtask=$PWD/target/debug/xtask
trap '(cd "$copy" && "$xtask" local down >/dev/null 2>&1) || true; rm -rf "$copy"' EXIT
cp -r ds0_utils.py ami_ids.json Cargo.toml build "$copy/"
rm -rf "$copy/build/runs" "$copy/build/local.json"
export XTASK_STANDIN_VENV=${XTASK_STANDIN_VENV:-$PWD/target/standin-venv}
xtask=$PWD/target/debug/xtask
(cd "$copy" && "$xtask" local up >/dev/null)
echo "-- test-ebs --local (4 EBS images, stand-in kept running by \`local up\`)"
time_it test-ebs 3 "cd $copy && $xtask test-ebs --local"
(cd "$copy" && "$xtask" local down >/dev/null)
# Official AMI names carry no timestamp, so a second publish against the same stand-in would hit
# "AMI name already exists", as in AWS: every publish below starts its own stand-in.
echo "-- publish --local --yes (32 public instance-store images; starts and stops its own stand-in)"
time_it publish 3 "cd $copy && $xtask publish --local --yes"
echo "-- publish --resume --local --yes after k failed builders (each run prepared by a publish"
echo "   in which those k builders fail)"
for k in 1 4 16; do
    fail=$(cd "$copy" && "$xtask" config official | grep -o '"name": "[^"]*"' | cut -d'"' -f4 | head -n "$k" | paste -sd,)
    prepare="cd $copy && XTASK_LOCAL_FAIL=$fail $xtask publish --local --yes >/dev/null 2>&1 || true"
    echo "   k=$k"
    if command -v hyperfine >/dev/null; then
        hyperfine --style basic --runs 3 --prepare "$prepare" --export-json "$out/resume-$k.json" \
            "cd $copy && $xtask publish --resume --local --yes" | grep -E "Time|Range"
    else
        sh -c "$prepare"
        start=$(date +%s%N)
        (cd "$copy" && "$xtask" publish --resume --local --yes >/dev/null 2>&1)
        echo "  $((($(date +%s%N) - start) / 1000000)) ms (one run)"
    fi
done
