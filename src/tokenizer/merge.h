// The symbol-merge loop shared by SPM and BPE: a linked list of symbols over one string and a
// priority queue of adjacent pairs; the best pair is merged until none is left.
// Source: ../shared/docs/formats.md §5.5 step 4 (SPM, by score) and §5.6 step 5 (BPE, by rank).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace hearth::tokenizer {

/// One symbol: a byte span of the word being merged, linked to its live neighbours. A symbol
/// merged into its left neighbour has `len == 0`. `key` is free for the algorithm (BPE keeps
/// the merge-table side id of the symbol's text there).
struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t start;
  uint32_t len;
  int32_t key;
};

/// Splits `text` into one symbol per UTF-8 character (length from the lead byte; a truncated
/// tail is one symbol), each with `key = key_of(text of the symbol)`.
template <class KeyOf>
void split_symbols(std::string_view text, std::vector<Symbol>& symbols, KeyOf&& key_of) {
  symbols.clear();
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = std::min(unicode::sequence_length(static_cast<uint8_t>(text[pos])), text.size() - pos);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, pos + len < text.size() ? index + 1 : -1, static_cast<uint32_t>(pos),
                       static_cast<uint32_t>(len), key_of(text.substr(pos, len))});
    pos += len;
  }
}

/// Merges adjacent symbols until no candidate pair is left. `policy.priority(l, r)` returns the
/// pair's priority (higher merges first; ties go to the leftmost pair) or nullopt if the pair
/// does not merge; `policy.merge_keys(l, r)` is called just before `l` absorbs `r`. Stale
/// queue entries (a side merged away or grown) are skipped.
template <class Priority, class Policy>
void merge_symbols(std::vector<Symbol>& symbols, Policy&& policy) {
  struct Candidate {
    Priority priority;
    int32_t left;
    int32_t right;
    uint32_t len;
  };
  struct Worse {
    bool operator()(const Candidate& a, const Candidate& b) const {
      return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, Worse> queue;
  const auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    if (const std::optional<Priority> p = policy.priority(l, r)) queue.push({*p, left, right, l.len + r.len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) consider(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = symbols[static_cast<size_t>(c.left)];
    Symbol& r = symbols[static_cast<size_t>(c.right)];
    // Symbols only grow to the right, so equal total length means both sides are unchanged.
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len) continue;
    policy.merge_keys(l, r);
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<size_t>(r.next)].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
}

}  // namespace hearth::tokenizer
