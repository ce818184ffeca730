#!/usr/bin/env bash
# Prompt-processing and generation speed of hearth on synthesized models, next to llama.cpp's
# figures on a machine of this kind, with the machine's memory read bandwidth measured in the
# same run (docs/performance.md is this script's output).
#
#   bench/performance.sh [MODEL_DIR]        (default MODEL_DIR: /tmp/hearth-perf)
#
# Environment: HEARTH (binary, default build/hearth), REPS (repetitions, default 3),
# THREADS (default "1,2"), PROMPT (default 512), GEN (default 128), ONLY (space-separated
# model stems to run, e.g. "qwen3-1.7b-Q4_K_M").
# The models (random weights in the real shapes) are written once by `hearth synth` as F16 and
# converted by `hearth quantize`; about 11 GB of disk for all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
HEARTH=${HEARTH:-build/hearth}
DIR=${1:-/tmp/hearth-perf}
REPS=${REPS:-3}
THREADS=${THREADS:-1,2}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
mkdir -p "$DIR"

# name:layers (0: all) and the types to benchmark.
# qwen3-30b-a3b-dense: Qwen3-30B-A3B's active parameters as a dense model (the MoE comparison).
SHAPES=("qwen3-1.7b:0" "llama3.2-1b:0" "qwen3-30b-a3b:4" "qwen3-30b-a3b-dense:4")
declare -A TYPES=([qwen3-1.7b]="Q4_K_M Q8_0 IQ4_XS" [llama3.2-1b]="Q4_K_M Q8_0 IQ4_XS" [qwen3-30b-a3b]="Q4_K_M"
                  [qwen3-30b-a3b-dense]="Q4_K_M")

stems=()
for entry in "${SHAPES[@]}"; do
  name=${entry%%:*}
  layers=${entry##*:}
  base=$name
  extra=()
  if [ "$layers" != 0 ]; then
    base="$name-${layers}L"
    extra=(--layers "$layers")
  fi
  if ! "$HEARTH" synth --list | awk '{print $1}' | grep -qx "$name"; then
    echo "skipping $name: this hearth cannot synthesize it" >&2
    continue
  fi
  for type in ${TYPES[$name]}; do
    stem="$base-$type"
    if [ -n "${ONLY:-}" ] && ! grep -qw -- "$stem" <<<"$ONLY"; then continue; fi
    if [ ! -f "$DIR/$stem.gguf" ]; then
      [ -f "$DIR/$base-F16.gguf" ] || "$HEARTH" synth "$name" "${extra[@]}" --type F16 -o "$DIR/$base-F16.gguf" >&2
      "$HEARTH" quantize "$DIR/$base-F16.gguf" "$DIR/$stem.gguf" "$type" >&2
    fi
    stems+=("$stem")
  done
done

if [ -z "${REPORT_ONLY:-}" ]; then  # REPORT_ONLY=1: only print the table of the last run's JSON
  "$HEARTH" bench --bandwidth -t "$THREADS" -r "$REPS" -o json >"$DIR/bandwidth.json"
  for stem in "${stems[@]}"; do
    echo "bench $stem" >&2
    "$HEARTH" show "$DIR/$stem.gguf" --json >"$DIR/$stem.show.json"
    "$HEARTH" bench -m "$DIR/$stem.gguf" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r "$REPS" -o json >"$DIR/$stem.bench.json"
  done
  # The bandwidth probe again, so a change of machine load during the run shows.
  "$HEARTH" bench --bandwidth -t "$THREADS" -r "$REPS" -o json >"$DIR/bandwidth-after.json"
fi

python3 - "$DIR" "$PROMPT" "$GEN" "${stems[@]}" <<'EOF'
import json, sys
d, prompt, gen, stems = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
# llama.cpp commit 3f545be, CPU build with AVX-512, on a machine of this kind (issue 4): t/s.
LLAMA = {("qwen3-1.7b-Q4_K_M", 2): (85, 28.0), ("qwen3-1.7b-Q8_0", 2): (71, 17.6),
         ("qwen3-1.7b-Q4_K_M", 1): (41, 18.6), ("qwen3-30b-a3b-4L-Q4_K_M", 2): (368, 80)}
bw = {}
for f in ("bandwidth.json", "bandwidth-after.json"):
    for r in json.load(open(f"{d}/{f}")):
        bw.setdefault(r["n_threads"], []).append(r["gb_per_s"])
print("Read bandwidth (GB/s, best pass; before / after the model runs): " +
      ", ".join(f"{t} thread{'s' if t > 1 else ''}: {v[0]:.1f} / {v[-1]:.1f}" for t, v in sorted(bw.items())))
print()
print(f"| model | threads | pp{prompt} t/s | llama.cpp | ratio | tg{gen} t/s | llama.cpp | ratio | "
      "weights read / token | tg × bytes ÷ bandwidth (before / after) | peak RSS ÷ (file + KV) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for stem in stems:
    show = json.load(open(f"{d}/{stem}.show.json"))
    runs = json.load(open(f"{d}/{stem}.bench.json"))
    n_ctx = prompt + gen
    kv = n_ctx * show["n_layer"] * show["n_head_kv"] * show["head_dim"] * 2 * 2  # K and V, F16
    by = {}
    for r in runs:
        kind = "pp" if r["n_prompt"] > 0 else "tg"
        by[(kind, r["n_threads"])] = r
    for t in sorted({k[1] for k in by}):
        pp, tg = by.get(("pp", t)), by.get(("tg", t))
        ref = LLAMA.get((stem, t))
        def cell(r):
            return f"{r['avg_ts']:.2f} ± {r['stddev_ts']:.2f}" if r else "–"
        ppr = f"{pp['avg_ts'] / ref[0]:.2f}×" if pp and ref else "–"
        tgr = f"{tg['avg_ts'] / ref[1]:.2f}×" if tg and ref else "–"
        rd = (tg or pp)["weights_read_per_token_bytes"]
        frac = " / ".join(f"{tg['avg_ts'] * rd / 1e9 / b:.0%}" for b in bw[t]) if tg and t in bw else "–"
        rss = (tg or pp)["peak_rss_bytes"] / (show["file_bytes"] + kv)
        print(f"| {stem} | {t} | {cell(pp)} | {ref[0] if ref else '–'} | {ppr} | {cell(tg)} | "
              f"{ref[1] if ref else '–'} | {tgr} | {rd / 2**30:.2f} GiB | {frac} | {rss:.2f} |")

# MoE at the speed of its active parameters (issue 5): time per token of the 4-layer
# Qwen3-30B-A3B over that of its dense twin with the same active parameters.
moe, dense = "qwen3-30b-a3b-4L-Q4_K_M", "qwen3-30b-a3b-dense-4L-Q4_K_M"
if moe in stems and dense in stems:
    m = {(("pp" if r["n_prompt"] else "tg"), r["n_threads"]): r for r in json.load(open(f"{d}/{moe}.bench.json"))}
    n = {(("pp" if r["n_prompt"] else "tg"), r["n_threads"]): r for r in json.load(open(f"{d}/{dense}.bench.json"))}
    print()
    print("| MoE ÷ dense twin (same active parameters), time per token | threads | pp | tg |")
    print("|---|---:|---:|---:|")
    for t in sorted({k[1] for k in m} & {k[1] for k in n}):
        ratio = lambda k: f"{n[(k, t)]['avg_ts'] / m[(k, t)]['avg_ts']:.2f}×" if (k, t) in m and (k, t) in n else "–"
        print(f"| {moe} ÷ {dense} | {t} | {ratio('pp')} | {ratio('tg')} |")
EOF
