#!/usr/bin/env bash
# Quantization quality on hearth's demo model: for each llama-quantize mix, the file size, bits
# per weight, held-out perplexity and KL divergence from the F16 model (hearth perplexity
# --kl-divergence), written as a markdown table to docs/quantization.md.
#
#   bench/quant_quality.sh [TEXT] [CHUNKS] [MIX...]
#
# TEXT defaults to the demo model's held-out split (build/kjv/heldout.txt, made by
# tools/kjv/extract_corpus.py from Debian's bible-kjv if missing); CHUNKS (default 0 = all)
# limits the number of 256-token windows. The i-quant mixes of `imatrix_mixes` (IQ3_M .. IQ1_S;
# IQ1_*, IQ2_* and IQ3_XXS need one) are quantized with an importance matrix made by
# `hearth imatrix` from the training split (build/kjv/train.txt, IMATRIX_CHUNKS windows of 256
# tokens, default 64). With MIX arguments only F16 and those mixes are measured and their rows
# printed to stdout; docs/quantization.md is left alone. The program is $HEARTH (default
# build/hearth, tools/bootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."
text="${1:-build/kjv/heldout.txt}"
chunks="${2:-0}"
shift $(( $# < 2 ? $# : 2 ))
hearth="${HEARTH:-build/hearth}"
plain_mixes=(Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S IQ4_XS IQ4_NL Q4_1 Q4_0 Q3_K_L Q3_K_M Q3_K_S Q2_K)
imatrix_mixes=(IQ3_M IQ3_S IQ3_XS IQ3_XXS IQ2_M IQ2_S IQ2_XS IQ2_XXS IQ1_M IQ1_S)
mixes=("${plain_mixes[@]}" "${imatrix_mixes[@]}")
out=docs/quantization.md
if [ $# -gt 0 ]; then
  mixes=("$@")
  out=/dev/stdout
fi
f16=models/hearth-kjv-F16.gguf
train=build/kjv/train.txt
imatrix_chunks="${IMATRIX_CHUNKS:-64}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if { [ ! -f "$text" ] && [ "$text" = build/kjv/heldout.txt ]; } || [ ! -f "$train" ]; then
  tools/kjv/extract_corpus.py build/kjv >/dev/null
fi

needs_imatrix() {
  local m
  for m in "${imatrix_mixes[@]}"; do [ "$m" = "$1" ] && return 0; done
  return 1
}
imatrix=""
for mix in "${mixes[@]}"; do
  if needs_imatrix "$mix"; then
    imatrix="$work/kjv.imatrix.gguf"
    "$hearth" imatrix "$f16" "$train" -o "$imatrix" --chunks "$imatrix_chunks" >/dev/null 2>"$work/i.err" ||
      { cat "$work/i.err"; exit 1; }
    break
  fi
done

if [ "$out" = docs/quantization.md ]; then
  mkdir -p docs
  {
    echo "# Quantization quality on the demo model"
    echo
    echo "Made by \`bench/quant_quality.sh\` on $(date -u +%Y-%m-%d): \`hearth quantize\` of"
    echo "\`$f16\` (5.77M parameters, 256-wide rows) into each mix, then \`hearth perplexity MIX.gguf"
    echo "$(basename "$text") --kl-divergence $(basename "$f16")\` (n_ctx 256, llama.cpp's windows$([ "$chunks" != 0 ] && echo ", first $chunks windows"))."
    echo "KLD is the mean KL divergence of the mix's next-token distribution from F16's, in nats;"
    echo "\"same top\" is how often both pick the same most likely token. bpw = tensor bytes × 8 /"
    echo "parameters, the F32 norms included. Mixes marked \"+ imatrix\" were quantized with"
    echo "\`--imatrix\`: an importance matrix from \`hearth imatrix\` on the training split"
    echo "($(basename "$train"), first $imatrix_chunks windows of 256 tokens; IQ1_*, IQ2_* and IQ3_XXS"
    echo "need one); the others without."
    echo
    echo "| mix | file size | bpw | perplexity | Δ vs F16 | mean KLD | same top |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
  } > "$out"
fi

ppl_line() { grep -oE "Mean PPL\($1\) *: *[0-9.]+" | grep -oE "[0-9.]+$"; }
base=""
for mix in F16 "${mixes[@]}"; do
  label=$mix
  if [ "$mix" = F16 ]; then
    file=$f16
  else
    file="$work/$mix.gguf"
    args=()
    if needs_imatrix "$mix"; then
      args=(--imatrix "$imatrix")
      label="$mix + imatrix"
    fi
    "$hearth" quantize "$f16" "$file" "$mix" "${args[@]}" >/dev/null 2>"$work/q.err" || { cat "$work/q.err"; exit 1; }
  fi
  res=$("$hearth" perplexity "$file" "$text" --chunks "$chunks" --kl-divergence "$f16" 2>/dev/null)
  ppl=$(echo "$res" | ppl_line Q)
  kld=$(echo "$res" | grep -oE "Mean KLD *: *[0-9.e-]+" | grep -oE "[0-9.e-]+$")
  top=$(echo "$res" | grep -oE "Same top p *: *[0-9.]+" | grep -oE "[0-9.]+$")
  [ -z "$base" ] && base=$ppl
  "$hearth" show "$file" --json > "$work/show.json"
  python3 - "$label" "$work/show.json" "$ppl" "$base" "$kld" "$top" >> "$out" <<'PY'
import json, sys
mix, show, ppl, base, kld, top = sys.argv[1:]
s = json.load(open(show))
ppl, base, kld, top = float(ppl), float(base), float(kld), float(top)
bpw = 8 * s["weights_bytes"] / s["n_params"]
print(f"| {mix} | {s['file_bytes']/2**20:.2f} MiB | {bpw:.2f} | {ppl:.4f} | {100*(ppl/base-1):+.2f}% | {kld:.6f} | {top:.2f}% |")
PY
  [ "$file" != "$f16" ] && rm -f "$file"
  echo "$mix done" >&2
done
[ "$out" = docs/quantization.md ] && echo "wrote $out" >&2
exit 0
