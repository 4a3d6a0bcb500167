#!/usr/bin/env bash
# Instruction counts (valgrind callgrind) of an authorised read against a bare read: robust on a
# busy machine, where wall-clock and even CPU-time ratios move by a few points.
#   benchmarks/Tenantry.Policies.Benchmarks/instructions.sh [count] [build output folder]
# Builds nothing: run `dotnet build -c Release benchmarks/Tenantry.Policies.Benchmarks` first.
# Four runs (start-up only, N bare reads, N authorised reads, N authorisations without a file),
# two at a time; per operation = (run - start-up) / N. The tiered JIT is off (everything is
# compiled optimised at once) and the warm-up is a fixed 2000 rounds, so runs repeat exactly.
# Counts are user-space instructions only: the bare read's cost is mostly in the kernel (open,
# fstat, flock, read, close), so this ratio is far above the time ratio; it is the robust
# before/after measure of what authorisation itself executes.
set -euo pipefail
count=${1:-3000}
here=$(cd "$(dirname "$0")" && pwd)
bin=${2:-$here/bin/Release/net10.0}
out=$(mktemp -d)
# Idle thread-pool workers spin a while before sleeping, a count that depends on timing: off.
export DOTNET_TieredCompilation=0 DOTNET_gcServer=0 DOTNET_GCgen0size=0x4000000 DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0
run() { # label mode count
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.cg" "$bin/Tenantry.Policies.Benchmarks" --mode "$2" --count "$3" >"$out/$1.log" 2>&1
  grep -o 'refs: *[0-9,]*' "$out/$1.log" | tr -d ', ' | cut -d: -f2 >"$out/$1.ir"
}
run zero bare 0 & run bare bare "$count" & wait
run authorised authorised "$count" & run authorisation authorisation "$count" & wait
zero=$(cat "$out/zero.ir")
per() { echo $(( ($(cat "$out/$1.ir") - zero) / count )); }
bare=$(per bare); authorised=$(per authorised); authorisation=$(per authorisation)
echo "user-space instructions per operation ($count each, callgrind):"
echo "  bare read:                   $bare"
echo "  authorised read:             $authorised"
echo "  authorisation alone:         $authorisation"
awk -v b="$bare" -v a="$authorised" -v z="$authorisation" 'BEGIN {
  printf "  read-path overhead:          %.2f%% (goal <= 5%%: %s)\n", (a - b) * 100 / b, ((a - b) * 100 / b <= 5 ? "met" : "NOT met");
  printf "  authorisation alone / bare:  %.2f%%\n", z * 100 / b }'
rm -rf "$out"
