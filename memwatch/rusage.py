"""getrusage figures in memwatch's units; a leaf that every backend and run.py may import."""

from __future__ import annotations

import sys


def maxrss_bytes(ru_maxrss: int, platform: str = sys.platform) -> int:
    """getrusage's ``ru_maxrss`` in bytes, whatever unit this platform counts it in."""
    # Linux getrusage(2): "the maximum resident set size used (in kilobytes)"; the BSDs
    # count kilobytes too. macOS getrusage(2): "the maximum resident set size utilized
    # (in bytes)" (XNU multiplies by the page size and never divides).
    return ru_maxrss if platform == "darwin" else ru_maxrss * 1024
