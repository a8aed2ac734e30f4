#!/usr/bin/env python3
"""Split the corpus once, at random, into a development half and a held-out half.

    python benchmarks/corpus/split.py [--seed N]

Draws seeded random halves until one is balanced: in each half, every growth pattern
and every kind of code with two or more workloads has half its workloads (rounded either
way). The result goes to split.json with the seed; an existing split.json is never
replaced, because a held-out half that was re-drawn after looking at it is not held out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from programs import WORKLOADS  # noqa: E402

SPLIT_PATH = os.path.join(HERE, "split.json")


def balanced(development: set[str]) -> bool:
    """Every pattern and kind is split as evenly as its count allows."""
    for tag in ("kind", "pattern"):
        total = Counter(getattr(w, tag) for w in WORKLOADS.values())
        dev = Counter(getattr(w, tag) for n, w in WORKLOADS.items() if n in development)
        if any(abs(2 * dev[t] - count) > 1 for t, count in total.items()):
            return False
    return True


def draw(seed: int) -> dict[str, object]:
    """The first balanced half drawn by random.Random(seed), as split.json holds it."""
    rng = random.Random(seed)
    names = sorted(WORKLOADS)
    while True:
        development = set(rng.sample(names, len(names) // 2))
        if balanced(development):
            break
    return {
        "seed": seed,
        "development": sorted(development),
        "held_out": sorted(set(names) - development),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args(argv)
    if os.path.exists(SPLIT_PATH):
        print(f"split.py: {SPLIT_PATH} exists and is never re-drawn; left as it is",
              file=sys.stderr)  # fmt: skip
        return 1
    with open(SPLIT_PATH, "w") as f:
        json.dump(draw(args.seed), f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
