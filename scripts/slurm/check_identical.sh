#!/usr/bin/env bash
# check_identical.sh - run one configuration locally and through SLURM, and require identical tables.
#
#   scripts/slurm/check_identical.sh [CONFIGFILE [TARGET...]]   # default config/test.yaml, all targets; as root
#
# TARGETs are paths relative to the results directory (e.g. tables/main.parquet tables/exponents.csv); each run
# builds them under its own results directory (results-local/..., results-slurm/...). Without TARGETs both runs
# build the workflow's default target (every table, notebook, figure and the report).
#
# 1. starts the local SLURM cluster (scripts/slurm/local_cluster.sh; exit 77 + message if impossible)
# 2. snapshots the source tree (git-tracked + untracked, not ignored files) to $OUT/tree, so both
#    runs - and every SLURM job, which re-reads the Snakefile - see the same code even while the
#    repository is being edited; PYTHONPATH=$OUT/tree/src shadows the venv's editable sketchlaw.
# 3. in $OUT/tree: snakemake [TARGET...] --cores N                --config results_dir=results-local
#                  snakemake [TARGET...] --profile profiles/slurm --config results_dir=results-slurm
# 4. prints the SLURM job ids, then compares every file under tables/ byte for byte (cmp).
# Exit: 0 identical; 1 a run failed or tables differ; 77 no SLURM here (the message says why).
#
# Env: CHECK_OUT=dir (default: a new /tmp/sketchlaw-check.XXXXXX), CHECK_TIMEOUT=seconds per run
#      (default 3600), SNAKEMAKE=path (default .venv/bin/snakemake), SKETCHLAW_SLURM_DIR (cluster state).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONFIG=${1:-config/test.yaml}
TARGETS=("${@:2}")
for t in "${TARGETS[@]}"; do
    [[ -n $t && $t != /* && $t != -* ]] || { echo "TARGET must be a path relative to the results directory: '$t'" >&2; exit 2; }
done
SNAKEMAKE=${SNAKEMAKE:-$ROOT/.venv/bin/snakemake}
PYTHON=$(dirname "$SNAKEMAKE")/python
TIMEOUT=${CHECK_TIMEOUT:-3600}
OUT=${CHECK_OUT:-$(mktemp -d /tmp/sketchlaw-check.XXXXXX)}
# Every SLURM job starts snakemake twice; without bytecode caching (PYTHONDONTWRITEBYTECODE=1 and
# no __pycache__ in the venv) each start costs ~14 s instead of ~4 s. Jobs inherit this environment.
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/sketchlaw-pycache}
unset PYTHONDONTWRITEBYTECODE

say() { printf '[check_identical %(%H:%M:%S)T] %s\n' -1 "$*"; }

"$ROOT/scripts/slurm/local_cluster.sh" start >"$OUT/cluster.log" 2>&1
rc=$?
if (( rc != 0 )); then
    cat "$OUT/cluster.log" >&2
    (( rc == 77 )) && exit 77
    echo "local_cluster.sh failed with exit code $rc" >&2; exit 1
fi
say "SLURM cluster up: $(sinfo -h -o '%P %a %D %T' | tr '\n' ' ')"

SNAP=$OUT/tree
mkdir -p "$SNAP"
if git -C "$ROOT" rev-parse --show-toplevel >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z -co --exclude-standard | tar -C "$ROOT" --null -T - --ignore-failed-read -cf - 2>/dev/null
else
    tar -C "$ROOT" --exclude=./.venv --exclude=./.git --exclude=./.snakemake --exclude=./results -cf - .
fi | tar -C "$SNAP" -xf - || { echo "cannot snapshot $ROOT into $SNAP" >&2; exit 1; }
export PYTHONPATH=$SNAP/src${PYTHONPATH:+:$PYTHONPATH}
say "source snapshot: $SNAP ($(find "$SNAP" -type f | wc -l) files)"

cd "$SNAP" || exit 1
run() {  # name, extra snakemake args...
    local name=$1; shift
    # targets first: --config takes every following word that is not an option
    local targets=("${TARGETS[@]/#/results-$name/}")
    say "$name run -> $SNAP/results-$name (log $OUT/$name.log; targets: ${TARGETS[*]:-default})"
    local t0=$SECONDS
    timeout "$TIMEOUT" "$SNAKEMAKE" "${targets[@]}" --configfile "$CONFIG" --config results_dir="results-$name" "$@" \
        >"$OUT/$name.log" 2>&1
    local rc=$?
    say "$name run: exit $rc after $(( SECONDS - t0 )) s"
    if (( rc != 0 )); then
        tail -40 "$OUT/$name.log"
        (( rc == 124 )) && echo "$name run timed out after $TIMEOUT s" >&2
        exit 1
    fi
}
run local --cores "$(nproc)"
# cpus_per_task cap per group submission = the local node's CPUs (profile default: 2)
run slurm --profile profiles/slurm --resources cpus_per_task="$(nproc)"

# ------------------------------------------------------------------------------ SLURM job ids
mapfile -t JOBIDS < <(grep -o 'submitted with SLURM jobid [0-9]*' "$OUT/slurm.log" | awk '{print $NF}')
if (( ${#JOBIDS[@]} == 0 )); then echo "FAIL: no SLURM job ids in $OUT/slurm.log" >&2; exit 1; fi
say "SLURM job ids (${#JOBIDS[@]}): ${JOBIDS[*]}"
squeue --states=all -h -j "$(IFS=,; echo "${JOBIDS[*]}")" -o '  %i %T %M %j' 2>/dev/null | sort -n

# ------------------------------------------------------------------------------ compare tables
A=$SNAP/results-local/tables B=$SNAP/results-slurm/tables
list() { (cd "$1" 2>/dev/null && find . -type f | sed 's|^\./||' | sort); }
FILES_A=$(list "$A") FILES_B=$(list "$B")
fail=0
if [[ -z $FILES_A ]]; then echo "FAIL: no files under $A" >&2; exit 1; fi
if [[ $FILES_A != "$FILES_B" ]]; then
    echo "FAIL: different file sets under tables/:"; diff <(echo "$FILES_A") <(echo "$FILES_B"); fail=1
fi
same=0 differ=0
while read -r f; do
    [[ -f $B/$f ]] || continue
    if cmp -s "$A/$f" "$B/$f"; then
        same=$(( same + 1 )); echo "  identical  $f"
    else
        differ=$(( differ + 1 )); fail=1; echo "  DIFFERENT  $f: $(cmp "$A/$f" "$B/$f" 2>&1 | head -1)"
        if [[ $f == *.parquet ]]; then   # say whether data or only the provenance metadata differ
            "$PYTHON" - "$A/$f" "$B/$f" <<'EOF'
import sys, pandas as pd, pyarrow.parquet as pq
a, b = sys.argv[1:]
print("             data equal:", pd.read_parquet(a).equals(pd.read_parquet(b)),
      "| schema metadata equal:", pq.read_schema(a).metadata == pq.read_schema(b).metadata)
EOF
        fi
    fi
done <<<"$FILES_A"
say "summary: $same identical, $differ different, ${#JOBIDS[@]} SLURM jobs; outputs in $OUT"
if (( fail )); then echo "FAIL: local and SLURM tables differ"; exit 1; fi
say "OK: every file under tables/ is byte-identical between the local and the SLURM run"
