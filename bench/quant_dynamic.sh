#!/usr/bin/env bash
# `hearth quantize --dynamic` against llama-quantize's fixed mixes on hearth's demo model: for
# each mix, the fixed mix (with the same imatrix) and dynamic files of the same size, compared by
# held-out perplexity and KL divergence from the F16 model (hearth perplexity --kl-divergence).
# Writes the table between the "results" markers of docs/quantization-dynamic.md.
#
#   bench/quant_dynamic.sh [CHUNKS] [HEARTH]
#
# Calibration (hearth imatrix): the first 64 windows of 256 tokens of the training split,
# build/kjv/train.txt. Evaluation: the held-out split, build/kjv/heldout.txt (both made by
# tools/kjv/extract_corpus.py from Debian's bible-kjv if missing). CHUNKS (default 0 = all)
# limits the number of 256-token evaluation windows. HEARTH defaults to build/hearth.
set -euo pipefail
cd "$(dirname "$0")/.."
chunks="${1:-0}"
hearth="${2:-build/hearth}"
mixes=(Q4_K_M IQ4_XS Q3_K_M)
f16=models/hearth-kjv-F16.gguf
train=build/kjv/train.txt
text=build/kjv/heldout.txt
doc=docs/quantization-dynamic.md
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$text" ] || [ ! -f "$train" ]; then
  tools/kjv/extract_corpus.py build/kjv >/dev/null
fi
threads=$(nproc)

"$hearth" imatrix "$f16" "$train" -o "$work/kjv.imatrix.gguf" -c 256 --chunks 64 -t "$threads" >/dev/null 2>&1
imatrix="$work/kjv.imatrix.gguf"

rows="$work/rows.md"
: > "$rows"
ppl_of() { grep -oE "Mean PPL\(Q\) *: *[0-9.]+" | grep -oE "[0-9.]+$"; }
base=""
# row LABEL FILE SECONDS: one table row for FILE.
row() {
  local label=$1 file=$2 secs=$3
  local res ppl kld top
  res=$("$hearth" perplexity "$file" "$text" --chunks "$chunks" --kl-divergence "$f16" -t "$threads" 2>/dev/null)
  ppl=$(echo "$res" | ppl_of)
  kld=$(echo "$res" | grep -oE "Mean KLD *: *[0-9.e-]+" | grep -oE "[0-9.e-]+$")
  top=$(echo "$res" | grep -oE "Same top p *: *[0-9.]+" | grep -oE "[0-9.]+$")
  [ -z "$base" ] && base=$ppl
  "$hearth" show "$file" --json > "$work/show.json"
  /usr/bin/python3 - "$label" "$work/show.json" "$ppl" "$base" "$kld" "$top" "$secs" >> "$rows" <<'EOF'
import json, sys
label, show, ppl, base, kld, top, secs = sys.argv[1:]
s = json.load(open(show))
types = s["tensor_types"]
f32 = types.get("F32", {"bytes": 0, "n_params": 0})
qbytes, qparams = s["weights_bytes"] - f32["bytes"], s["n_params"] - f32["n_params"]
mix = ", ".join(f"{v['count']} {k}" for k, v in sorted(types.items(), key=lambda kv: -kv[1]["n_params"]) if k != "F32")
ppl, base, kld, top = float(ppl), float(base), float(kld), float(top)
kld_text = f"{kld:.6f}".replace("-0.000000", "0.000000")  # F16 against itself: rounding noise
print(f"| {label} | {mix} | {s['file_bytes']/2**20:.2f} MiB | {8*qbytes/qparams:.3f} | {ppl:.4f} | "
      f"{100*(ppl/base-1):+.2f}% | {kld_text} | {top:.2f}% | {secs} |")
EOF
  echo "$label done" >&2
}

row F16 "$f16" "-"
for mix in "${mixes[@]}"; do
  "$hearth" quantize "$f16" "$work/$mix.gguf" "$mix" --imatrix "$imatrix" -t "$threads" >/dev/null 2>&1
  row "$mix (fixed mix, imatrix)" "$work/$mix.gguf" "-"
  for w in params tensor; do
    start=$(date +%s.%N)
    "$hearth" quantize "$f16" "$work/dyn-$mix-$w.gguf" --dynamic "$mix" --dynamic-weighting "$w" \
      --imatrix "$imatrix" -t "$threads" > "$work/dyn-$mix-$w.txt" 2>"$work/q.err" || { cat "$work/q.err"; exit 1; }
    secs=$(grep -oE "sensitivity measured in [0-9.]+ s" "$work/dyn-$mix-$w.txt" | grep -oE "[0-9.]+ s")
    row "--dynamic $mix --dynamic-weighting $w" "$work/dyn-$mix-$w.gguf" "$secs"
  done
  if [ "$mix" = Q4_K_M ]; then cp "$work/dyn-$mix-params.txt" "$work/allocation.txt"; fi
done

/usr/bin/python3 - "$doc" "$rows" "$work/allocation.txt" "$chunks" "$threads" <<'EOF'
import re, subprocess, sys, datetime
doc, rows, alloc, chunks, threads = sys.argv[1:]
table = open(rows).read().rstrip("\n")
lines = [l for l in open(alloc).read().splitlines() if not l.startswith("wrote ")]
windows = "all 256-token windows" if chunks == "0" else f"the first {chunks} 256-token windows"
out = (f"Made by `bench/quant_dynamic.sh` on {datetime.date.today().isoformat()} ({threads} threads; held-out "
       f"text: {windows}).\n\n"
       "| file | types | size | bpw | perplexity | Δ vs F16 | mean KLD | same top | sensitivity |\n"
       "|---|---|---:|---:|---:|---:|---:|---:|---:|\n" + table + "\n\n"
       "The allocation of `--dynamic Q4_K_M` (hearth's table):\n\n```\n" + "\n".join(lines) + "\n```\n")
text = open(doc).read()
begin, end = "<!-- results: bench/quant_dynamic.sh -->\n", "<!-- /results -->"
a, b = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:a] + out + text[b:])
EOF
echo "wrote $doc" >&2
