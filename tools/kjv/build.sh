#!/usr/bin/env bash
# Rebuilds hearth's demo model from scratch: corpus, tokenizer, training, GGUF export.
# About two hours on 2 CPU cores; not run in CI. Reproduces models/hearth-kjv-*.gguf.
#
#   tools/kjv/build.sh [WORK_DIR]      (default build/kjv; needs tools/bootstrap first)
#
# Debian packages: bible-kjv (the reader of bible-kjv-text), sentencepiece (spm_train),
# python3-torch, python3-numpy, libopenblas0-pthread (fast BLAS for torch).
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-build/kjv}"
mkdir -p "$work" models

need=(bible-kjv bible-kjv-text sentencepiece python3-torch python3-numpy libopenblas0-pthread)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 1. Corpus: one verse per line; every 16th chapter is held out.
tools/kjv/extract_corpus.py "$work"

# 2. Tokenizer: SentencePiece BPE on the training split, 4096 pieces, byte fallback,
#    no normalization (so hearth's SPM tokenizer reproduces it), stored in GGUF by hearth-export.
spm_train --input="$work/train.txt" --model_prefix="$work/tokenizer" --model_type=bpe --vocab_size=4096 \
  --byte_fallback=true --character_coverage=1.0 --normalization_rule_name=identity \
  --remove_extra_whitespaces=false --add_dummy_prefix=true --split_digits=true \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=2 --max_sentence_length=8192 \
  --input_sentence_size=0 --shuffle_input_sentence=false > "$work/spm.log" 2>&1
build/hearth-export --spm-vocab "$work/tokenizer.vocab" -o "$work/vocab.gguf"

# 3. Token ids as hearth tokenizes them (whole file, BOS first). The CI subset of the
#    held-out split is its first lines up to 17,000 bytes (about 16 windows of 256 tokens).
build/hearth tokenize "$work/vocab.gguf" --file "$work/train.txt" --ids > "$work/train.ids"
build/hearth tokenize "$work/vocab.gguf" --file "$work/heldout.txt" --ids > "$work/heldout.ids"
awk '{ n += length($0) + 1; print; if (n >= 17000) exit }' "$work/heldout.txt" > models/kjv-heldout-ci.txt
build/hearth tokenize "$work/vocab.gguf" --file models/kjv-heldout-ci.txt --ids > "$work/heldout-ci.ids"
build/hearth tokenize "$work/vocab.gguf" "And God said" --ids > "$work/prompt.ids"

# 4. Training (PyTorch, CPU, seed 1234).
/usr/bin/python3 tools/kjv/train.py "$work"

# 5. GGUF export with hearth's writer: F16 and Q8_0.
for type in F16 Q8_0; do
  build/hearth-export --spm-vocab "$work/tokenizer.vocab" --config "$work/model.json" --weights "$work/model.f32" \
    --type "$type" -o "models/hearth-kjv-$type.gguf"
done
# The same shape with the initial random weights, for the perplexity comparison (not committed).
build/hearth-export --spm-vocab "$work/tokenizer.vocab" --config "$work/model.json" --weights "$work/model-init.f32" \
  --type F16 -o "$work/hearth-kjv-random-F16.gguf"
cp "$work/fixture.json" models/hearth-kjv.fixture.json
cp "$work/train.log" models/hearth-kjv.train.log
ls -la models/
