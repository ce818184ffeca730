#!/usr/bin/python3
"""Extracts the King James Bible from Debian's bible-kjv-text package into plain text.

Reads the whole text with the package's reader (`bible`, from bible-kjv), one chapter at a
time as the reader formats it (a "Book N" heading, then "  V text" verses), and writes one
verse per line, without verse numbers or headings, in canonical book order. Chapters whose
index (0-based, over all 1,189 chapters) is 15 mod 16 go to the held-out split (6.25% of
chapters); all other chapters go to the training split. Output is deterministic.

Usage: extract_corpus.py OUT_DIR   -> OUT_DIR/train.txt, OUT_DIR/heldout.txt
"""
import os
import re
import subprocess
import sys

HELD_OUT_EVERY = 16  # chapter index % 16 == 15 -> held-out


def chapters(text):
    """Yields (heading, [verse texts]) for the reader's formatted output."""
    heading, verses = None, []
    for line in text.split("\n"):
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m:
            verses.append(m.group(2).strip())
        elif line.strip():
            if heading is not None:
                yield heading, verses
            heading, verses = line.strip(), []
    if heading is not None:
        yield heading, verses


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    # A very wide line keeps every verse on one line.
    raw = subprocess.run(["bible", "-l", "100000", "Gen1:1-Rev22:21"], check=True,
                         capture_output=True, text=True).stdout
    train, held = [], []
    n = 0
    for i, (heading, verses) in enumerate(chapters(raw)):
        (held if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 else train).extend(verses)
        n = i + 1
    if n != 1189:
        sys.exit(f"expected 1189 chapters, found {n}")
    for name, lines in (("train.txt", train), ("heldout.txt", held)):
        with open(os.path.join(out_dir, name), "w", encoding="ascii") as f:
            f.write("\n".join(lines) + "\n")
    size = lambda name: os.path.getsize(os.path.join(out_dir, name))
    total = size("train.txt") + size("heldout.txt")
    print(f"{n} chapters, {len(train) + len(held)} verses, {total} bytes: train {size('train.txt')}, "
          f"held-out {size('heldout.txt')} ({100.0 * size('heldout.txt') / total:.2f}%)")


if __name__ == "__main__":
    main()
