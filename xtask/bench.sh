#!/usr/bin/env bash
# Benchmarks reported in README.md: start-up of `cargo xtask`, a cold compile, `ami-ids` on a
# 1 GiB Packer log against a Python baseline and `grep -c`, and local builds against the stand-in.
# Run from the repository:
#   bash xtask/bench.sh            # everything
#   bash xtask/bench.sh ami-ids    # only `ami-ids` on the 1 GiB log (RUNS=5 runs each)
#   bash xtask/bench.sh local      # only the local builds
#   bash xtask/bench.sh lifecycle  # only cleanup and audit of all regions, XTASK_AWS_POOL=1 against 4
# Uses hyperfine when installed (Debian: `apt-get install hyperfine`), else repeats by hand.
# Writes only below target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"

time_it() { # NAME RUNS COMMAND: mean wall time of the shell command COMMAND over RUNS runs
    local name=$1 runs=$2 command=$3
    if command -v hyperfine >/dev/null; then
        # shellcheck disable=SC2086 # options, one word each
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

lifecycle() {
    cargo build --quiet --package xtask
    echo "== cleanup and audit of every region against the stand-in (32 public images in 8 regions)"
    # Global, not local: the EXIT trap runs after this function has returned.
    xtask=$PWD/target/debug/xtask
    copy=$(mktemp -d)
    trap '(cd "$copy" && "$xtask" local down >/dev/null 2>&1) || true; rm -rf "$copy"' EXIT
    cp -r ds0_utils.py ami_ids.json Cargo.toml .gitignore build "$copy/"
    rm -rf "$copy/build/runs" "$copy/build/local.json"
    export XTASK_STANDIN_VENV=${XTASK_STANDIN_VENV:-$PWD/target/standin-venv}
    (
        cd "$copy"
        export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
        export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
        git init --quiet --initial-branch 2.6 && git add --all && git commit --quiet -m start
        "$xtask" local up >/dev/null
        "$xtask" publish --local --yes >/dev/null 2>&1
        # The release: the scratch registry of the local publish becomes `ami_ids.json`, tagged.
        cp build/runs/official-local-*/ami_ids.json ami_ids.json
        git commit --quiet -am "Release 2.6.3" && "$xtask" tag 2.6.3 >/dev/null 2>&1
    )
    for pool in 1 4; do
        echo "-- cleanup --local --version 2.6.3 (a listing: every image is protected), XTASK_AWS_POOL=$pool"
        time_it "cleanup-pool-$pool" 3 "cd $copy && XTASK_AWS_POOL=$pool $xtask cleanup --local --version 2.6.3"
        echo "-- audit --local (32 images, 8 regions), XTASK_AWS_POOL=$pool"
        time_it "audit-pool-$pool" 3 "cd $copy && XTASK_AWS_POOL=$pool $xtask audit --local"
    done
}

part=${1:-all}
if [ "$part" = lifecycle ]; then
    lifecycle
    exit
fi
if [ "$part" = all ]; then
echo "== cold compile (debug, the whole workspace, from an empty target folder)"
rm -rf "$out/cold"
/usr/bin/time -f "  %e s wall, %U s user + %S s system CPU (load before: $(cut -d' ' -f1 /proc/loadavg))" \
    env CARGO_TARGET_DIR="$out/cold" cargo build --quiet --package xtask
rm -rf "$out/cold"

cargo build --quiet --package xtask
echo "== start-up: \`cargo xtask help\` (through cargo, as users run it)"
time_it startup-cargo 20 "cargo xtask help"
echo "== start-up: the binary alone, \`xtask help\`"
HYPERFINE_OPTIONS=--shell=none time_it startup-binary 50 "target/debug/xtask help"
fi

if [ "$part" = all ] || [ "$part" = ami-ids ]; then
cargo build --quiet --package xtask

# `ami-ids` as users run it: through `cargo xtask` (the dev profile), side by side in one
# hyperfine run with the 2015-style Python extractor and `grep -c`, so load hits all three alike.
echo "== ami-ids on a 1 GiB Packer machine-readable log (32 builders among provisioning output)"
log="$out/packer-1gib.log"
if [ ! -f "$log" ]; then
    # shellcheck disable=SC2046 # one argument per builder name
    python3 xtask/bench/make_log.py "$log" $((1 << 30)) \
        $(cargo xtask config official 2>/dev/null | grep -o '"name": "[^"]*"' | cut -d'"' -f4)
fi
echo "  $(wc -l <"$log") lines, $(($(stat -c %s "$log") / 1048576)) MiB"
echo '{}' >"$out/registry.json"
cargo xtask ami-ids "$log" --registry "$out/registry.json" 2>/dev/null | tail -n 1
if command -v hyperfine >/dev/null; then
    hyperfine --style basic --warmup 1 --runs "${RUNS:-5}" --export-json "$out/ami-ids.json" \
        -n "cargo xtask ami-ids" "cargo xtask ami-ids $log --registry $out/registry.json" \
        -n "python3 extract_2015.py" "python3 xtask/bench/extract_2015.py $log" \
        -n "grep -c artifact" "grep -c artifact $log" | grep -E "Benchmark|Time|Range"
    python3 - "$out/ami-ids.json" <<'PY'
import json, sys
runs = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
tool, python, grep = (runs[n] for n in ("cargo xtask ami-ids", "python3 extract_2015.py", "grep -c artifact"))
for what in ("mean", "user"):
    print(f"  by {what + (' (wall)' if what == 'mean' else ' CPU')}: Python / cargo xtask = "
          f"{python[what] / tool[what]:.1f}x faster, cargo xtask / grep -c = {tool[what] / grep[what]:.2f}x")
PY
else
    time_it ami-ids 3 "cargo xtask ami-ids $log --registry $out/registry.json"
    time_it python-2015 3 "python3 xtask/bench/extract_2015.py $log"
    time_it grep-c 3 "grep -c artifact $log"
fi
# Memory of the tool itself (through `cargo xtask`, cargo's own would be counted too).
/usr/bin/time -o "$out/ami-ids-memory.txt" -f "  peak memory of the xtask binary: %M KiB" \
    target/debug/xtask ami-ids "$log" --registry "$out/registry.json" >/dev/null 2>&1
cat "$out/ami-ids-memory.txt"
fi
[ "$part" = all ] || [ "$part" = local ] || exit 0

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
