#!/usr/bin/env bash
# KV cache quantization quality on hearth's demo model: for each K/V cache type pair, the held-out
# perplexity, its change from the f16 cache, the KL divergence from the model run with an f16
# cache (hearth perplexity --kl-divergence), top-1 agreement, and the KV cache bytes of a
# 4096-token context (hearth show --memory). Writes a markdown table to docs/kv-cache.md.
#
#   bench/kv_quality.sh [TEXT] [CHUNKS]
#
# TEXT defaults to the demo model's held-out split (build/kjv/heldout.txt, made by
# tools/kjv/extract_corpus.py if missing); CHUNKS (default 0 = all) limits the 256-token
# windows. The program is $HEARTH (default build/hearth).
set -euo pipefail
cd "$(dirname "$0")/.."
text="${1:-build/kjv/heldout.txt}"
chunks="${2:-0}"
hearth="${HEARTH:-build/hearth}"
model=models/hearth-kjv-F16.gguf
out=docs/kv-cache.md
pairs=("f16 f16" "bf16 bf16" "q8_0 q8_0" "q8_0 q4_0" "q4_0 q4_0")
if [ ! -f "$text" ] && [ "$text" = build/kjv/heldout.txt ]; then
  tools/kjv/extract_corpus.py build/kjv >/dev/null
fi

field() { sed -n "s/^$1 *: *\([-0-9.]*\).*/\1/p" | head -1; }
rows=()
base_ppl=""
base_kv=""
for pair in "${pairs[@]}"; do
  read -r k v <<<"$pair"
  log=$("$hearth" perplexity "$model" "$text" --chunks "$chunks" --kl-divergence "$model" -ctk "$k" -ctv "$v" 2>&1)
  ppl=$(field "Mean PPL(Q)" <<<"$log")
  kld=$(field "Mean KLD" <<<"$log")
  top=$(field "Same top p" <<<"$log")
  kv=$("$hearth" show --memory "$model" -c 4096 -ctk "$k" -ctv "$v" --json | sed -n 's/^  "kv_cache_bytes": \([0-9]*\).*/\1/p')
  [ -z "$base_ppl" ] && base_ppl=$ppl && base_kv=$kv
  dppl=$(awk -v a="$ppl" -v b="$base_ppl" 'BEGIN { printf "%+.2f%%", 100 * (a - b) / b }')
  saved=$(awk -v a="$kv" -v b="$base_kv" 'BEGIN { printf "%.0f%%", 100 * (1 - a / b) }')
  rows+=("| $k | $v | $ppl | $dppl | $kld | $top % | $kv | $saved |")
  echo "$k/$v: PPL $ppl ($dppl), KLD $kld, KV $kv bytes" >&2
done

{
  echo "# KV cache types: quality and memory"
  echo
  echo "Made by \`bench/kv_quality.sh\` on $(date -u +%Y-%m-%d): hearth's demo model hearth-kjv (F16 weights) on its"
  echo "held-out text ($(basename "$text"), windows of 256 tokens$([ "$chunks" != 0 ] && echo ", first $chunks")), with the K and V cache rows"
  echo "stored in each type. KL divergence and top-1 agreement are against the same model with an f16"
  echo "cache. KV bytes are for a 4096-token context (\`hearth show --memory -c 4096\`); the saving is"
  echo "against f16. Caches other than f16 use the flash-attention kernel, which reads the quantized"
  echo "rows directly."
  echo
  echo "| K type | V type | PPL | Δ PPL vs f16 | mean KLD | same top-1 | KV bytes (4096 ctx) | saved |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > "$out"
echo "wrote $out" >&2
