#!/usr/bin/env python3
"""workloads: real library jobs whose peak memory grows with SIZE in a known way.

    python examples/workloads.py WORKLOAD SIZE

Each job does real work with numpy/scipy, prints one line about its result and exits 0.
They are the test bed of benchmarks/fit_accuracy.py and good first jobs for a sweep:

    memwatch sweep --sizes 1000,2000,3000,4000,5000 --at 20000 -- \\
        python examples/workloads.py quadratic {size}

takes about ten seconds (its largest run holds ~325 MiB) and recommends ~5 GiB for 20000
points, 4x beyond what it ran (20000 itself holds ~4.5 GiB: mind a small machine).

    workload    SIZE is                      peak memory grows as
    linear      rows                         ~ SIZE             (~57 B a row)
    nlogn       array length                 ~ SIZE log SIZE    (sparse table, 8 B x SIZE log2 SIZE)
    quadratic   points                       ~ SIZE^2           (12 B x SIZE^2)
    fillin      grid side (SIZE^2 unknowns)  faster than SIZE^2 (LU fill-in; ~SIZE^2.3 here)
    dense       matrix order                 ~ SIZE^2           (eigh: ~5 matrices of 8 B x SIZE^2)
    streaming   MiB hashed                   constant           (one 1 MiB buffer)
    baseline    KiB allocated                constant: the numpy + scipy import (~60 MiB) dominates
    upscale     zoom factor                  ~ SIZE^2           (384x384 float32 image)

Imports happen inside each job, so each pays only for the libraries it uses (the import
baseline is part of the peak, as it is for any real job). Data are random with a fixed
seed, so a size always does the same work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

MIB = 1 << 20


def linear(size: int) -> str:
    """~ SIZE: a group-by over SIZE rows (np.unique + np.bincount) and a running total."""
    import numpy as np

    rng = np.random.default_rng(0)
    keys = rng.integers(0, 1000, size)
    values = rng.random(size)
    groups, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    running = np.cumsum(values)
    return f"{len(groups)} groups, largest sum {sums.max():.1f}, total {running[-1]:.1f}"


def nlogn(size: int) -> str:
    """~ SIZE log SIZE: a sparse table for range-minimum queries, log2(SIZE) levels of SIZE."""
    import numpy as np

    rng = np.random.default_rng(0)
    levels = [rng.random(size)]
    width = 1
    while 2 * width <= size:
        prev = levels[-1]
        levels.append(np.minimum(prev[:-width], prev[width:]))  # min over 2*width elements
        width *= 2
    # Answer 1000 random queries min(a[lo:hi]) with two overlapping table lookups.
    lo = rng.integers(0, size, 1000)
    hi = np.minimum(size, lo + rng.integers(1, size + 1, 1000))
    k = np.floor(np.log2(hi - lo)).astype(int)
    answers = [
        min(levels[j][a], levels[j][b - (1 << j)]) for a, b, j in zip(lo, hi, k, strict=True)
    ]
    entries = sum(map(len, levels))
    return f"{len(levels)} levels, {entries} entries, mean answer {np.mean(answers):.4f}"


def quadratic(size: int) -> str:
    """~ SIZE^2: all pairwise distances of SIZE points (scipy pdist, then squareform)."""
    import numpy as np
    from scipy.spatial.distance import pdist, squareform

    points = np.random.default_rng(0).random((size, 3))
    condensed = pdist(points)  # SIZE*(SIZE-1)/2 doubles
    square = squareform(condensed)  # SIZE^2 doubles, while the condensed form is still held
    np.fill_diagonal(square, np.inf)  # in place: no third copy
    nearest = square.min(axis=1)
    return f"mean distance {condensed.mean():.4f}, mean nearest neighbour {nearest.mean():.4f}"


def fillin(size: int) -> str:
    """Faster than SIZE^2: sparse LU (splu) of a 2-D Laplacian on a SIZE x SIZE grid: fill-in."""
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    line = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(size, size))
    eye = sp.identity(size)
    laplacian = (sp.kron(eye, line) + sp.kron(line, eye)).tocsc()
    lu = splu(laplacian)
    x = lu.solve(np.ones(size * size))
    fill = lu.nnz / laplacian.nnz  # lu.L and lu.U would be new copies: not asked for
    return f"{size * size} unknowns, fill-in {fill:.1f}x the matrix, max solution {x.max():.2f}"


def dense(size: int) -> str:
    """~ SIZE^2: eigendecomposition (np.linalg.eigh) of a dense symmetric SIZE x SIZE matrix."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((size, size))
    a += a.T
    eigenvalues, eigenvectors = np.linalg.eigh(a)
    norm = np.linalg.norm(eigenvectors[:, -1])
    return f"largest eigenvalue {eigenvalues[-1]:.2f}, |its eigenvector| {norm:.3f}"


def streaming(size: int) -> str:
    """Constant: SIZE MiB from /dev/urandom through SHA-256 in one reused 1 MiB buffer."""
    import hashlib

    digest = hashlib.sha256()
    buf = bytearray(MIB)
    with open("/dev/urandom", "rb", buffering=0) as f:
        for _ in range(size):
            n = f.readinto(buf)
            digest.update(memoryview(buf)[:n])
    return f"sha256 of {size} MiB: {digest.hexdigest()[:16]}..."


def baseline(size: int) -> str:
    """Constant (import-dominated): numpy and scipy's big modules, then SIZE KiB of data."""
    import numpy as np
    import scipy.integrate
    import scipy.linalg
    import scipy.optimize
    import scipy.sparse
    import scipy.stats

    data = np.ones(size * 1024 // 8)  # written, so resident
    mods = (scipy.integrate, scipy.linalg, scipy.optimize, scipy.sparse, scipy.stats)
    return f"{len(mods)} scipy modules loaded, {data.nbytes // 1024} KiB allocated"


def upscale(size: int) -> str:
    """~ SIZE^2: enlarge a 384x384 float32 image SIZE times with scipy.ndimage.zoom."""
    import numpy as np
    from scipy.ndimage import zoom

    y, x = np.mgrid[0:384, 0:384].astype(np.float32) / 384
    image = np.sin(12 * x) * np.cos(9 * y)
    big = zoom(image, size, order=1)
    return f"{image.shape} -> {big.shape}, mean {big.mean():.4f}"


WORKLOADS: dict[str, Callable[[int], str]] = {
    f.__name__: f for f in (linear, nlogn, quadratic, fillin, dense, streaming, baseline, upscale)
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in WORKLOADS:
        names = ", ".join(WORKLOADS)
        print(f"usage: workloads.py WORKLOAD SIZE (WORKLOAD one of {names})", file=sys.stderr)
        return 2
    try:
        size = int(argv[1])
    except ValueError:
        print(f"workloads.py: SIZE must be a whole number (got {argv[1]!r})", file=sys.stderr)
        return 2
    if size < 1:
        print(f"workloads.py: SIZE must be at least 1 (got {size})", file=sys.stderr)
        return 2
    print(f"{argv[0]} {size}: {WORKLOADS[argv[0]](size)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
