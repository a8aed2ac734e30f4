#!/usr/bin/env python3
"""The evaluation corpus: real workloads whose peak memory memwatch must predict.

    python benchmarks/corpus/programs.py NAME SIZE

runs workload NAME at the integer SIZE (its unit is given in the table below). Every
workload calls a real library the way a user's job would; none allocates bytes only to
make a shape. Each imports only what it uses, so its baseline is the one a user would see.
Several spawn processes, so only a whole-tree (cgroup) peak is the truth.

WORKLOADS at the bottom tags each with its kind of code and the growth pattern it was
built to show; benchmarks/corpus/README.md says which patterns the measured data shows.
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MIB = 1 << 20


# --- numpy ---------------------------------------------------------------------------


def numpy_lookup(size: int) -> None:
    """Gather size*100k random entries from a fixed 384 MiB table (a precomputed LUT)."""
    import numpy as np

    table = np.arange(48 * MIB, dtype=np.float64)
    np.sqrt(table, out=table)  # in place: the baseline is the table, not two of it
    rng = np.random.default_rng(size)
    idx = rng.integers(0, table.size, size * 100_000)
    print(float(table[idx].sum()))


def numpy_sparse_table(size: int) -> None:
    """Range-minimum sparse table over size*10k int32 values: log2(n) levels of n each."""
    import numpy as np

    rng = np.random.default_rng(size)
    levels = [rng.integers(0, 1 << 30, size * 10_000, dtype=np.int32)]
    step = 1
    while 2 * step <= levels[0].size:
        prev = levels[-1]
        levels.append(np.minimum(prev[:-step], prev[step:]))
        step *= 2
    lo, hi = 5, levels[0].size - 3
    k = (hi - lo).bit_length() - 1
    print(len(levels), min(levels[k][lo], levels[k][hi - (1 << k)]))


def numpy_gradient(size: int) -> None:
    """Gradient magnitude of a size x size float32 field (an image-processing step)."""
    import numpy as np

    field = np.random.default_rng(size).random((size, size), dtype=np.float32)
    gy, gx = np.gradient(field)
    print(float(np.hypot(gx, gy).mean()))


def numpy_fft_pow2(size: int) -> None:
    """Autocorrelation of size*10k samples by an FFT zero-padded to a power of two."""
    import numpy as np

    x = np.random.default_rng(size).standard_normal(size * 10_000)
    nfft = 1 << (2 * x.size - 1).bit_length()
    spectrum = np.fft.rfft(x, nfft)
    acf = np.fft.irfft(spectrum * spectrum.conj(), nfft)[: x.size]
    print(float(acf[1] / acf[0]))


def numpy_doubling(size: int) -> None:
    """Append size*10k readings in 64k batches to an array that doubles when full."""
    import numpy as np

    rng = np.random.default_rng(size)
    buf = np.empty(1024)
    used = 0
    remaining = size * 10_000
    while remaining:
        batch = rng.standard_normal(min(65536, remaining))
        while used + batch.size > buf.size:
            buf = np.resize(buf, 2 * buf.size)  # like a vector's growth: copy into 2x
        buf[used : used + batch.size] = batch
        used += batch.size
        remaining -= batch.size
    print(float(buf[:used].mean()))


def numpy_fft_exact(size: int) -> None:
    """FFT of exactly size*1000+1 samples: lengths with a large prime factor take Bluestein."""
    import numpy as np

    x = np.random.default_rng(size).standard_normal(size * 1000 + 1)
    print(float(np.abs(np.fft.fft(x)).max()))


def numpy_pool(size: int) -> None:
    """A pre-faulted 64 MiB buffer pool serving a size MiB request; grows only past it."""
    import numpy as np

    pool = np.ones(64 * MIB // 8)  # reserved and touched at start-up, as a cache would
    need = size * MIB // 8
    if need > pool.size:
        pool = np.resize(pool, need)  # the pool grows to the request, never shrinks
    work = pool[:need]
    np.random.default_rng(size).random(out=work)
    print(float(work.sum()))


def numpy_threads(size: int) -> None:
    """16 chunks of size MiB/4 each, sorted by 4 threads: how many overlap is up to timing."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    def task(seed: int) -> float:
        chunk = np.random.default_rng(seed).standard_normal(size * MIB // 32)
        return float(np.sort(chunk)[chunk.size // 2])

    with ThreadPoolExecutor(4) as pool:
        print(sum(pool.map(task, range(16))))


# --- pandas --------------------------------------------------------------------------


def pandas_groupby(size: int) -> None:
    """Group-by aggregate and transform of a size*10k-row frame."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(size)
    n = size * 10_000
    df = pd.DataFrame(
        {
            "key": rng.integers(0, 1000, n),
            "a": rng.standard_normal(n),
            "b": rng.random(n),
            "c": rng.integers(0, 100, n),
        }
    )
    summary = df.groupby("key").agg({"a": ["mean", "std"], "b": "sum", "c": "max"})
    df["a_centred"] = df["a"] - df.groupby("key")["a"].transform("mean")
    print(len(summary), float(df["a_centred"].abs().mean()))


def pandas_merge(size: int) -> None:
    """Hour-of-week profile of a fixed one-year minute calendar, merged into size*10k events."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(size)
    cal = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=525_600, freq="min")})
    cal["how"] = cal["t"].dt.dayofweek * 24 + cal["t"].dt.hour
    cal["load"] = np.sin(cal["t"].dt.hour * (np.pi / 12)) + rng.random(len(cal))
    profile = cal.groupby("how", as_index=False)["load"].mean()
    del cal  # the fixed phase ends here; the rest grows with the events
    n = size * 10_000
    events = pd.DataFrame({"how": rng.integers(0, 168, n), "x": rng.standard_normal(n)})
    merged = events.merge(profile, on="how")
    merged["label"] = np.where(merged["x"] > merged["load"], "up", "down")
    print(merged.groupby("label")["x"].mean().to_dict())


class _CsvStream(io.RawIOBase):
    """A file-like object producing size*10k CSV rows on demand (a socket or a pipe)."""

    def __init__(self, rows: int) -> None:
        self._lines = self._generate(rows)
        self._pending = b""

    @staticmethod
    def _generate(rows: int) -> Iterator[bytes]:
        yield b"id,city,amount\n"
        rng = random.Random(rows)
        cities = [f"city{i}" for i in range(50)]
        for start in range(0, rows, 5000):
            yield "".join(
                f"{i},{rng.choice(cities)},{rng.random() * 100:.2f}\n"
                for i in range(start, min(rows, start + 5000))
            ).encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while not self._pending:
            try:
                self._pending = next(self._lines)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def pandas_chunked(size: int) -> None:
    """Stream size*10k CSV rows through read_csv(chunksize=50k), keeping per-city totals."""
    import pandas as pd

    totals: pd.Series | None = None
    stream = io.BufferedReader(_CsvStream(size * 10_000))
    for chunk in pd.read_csv(stream, chunksize=50_000):
        part = chunk.groupby("city")["amount"].sum()
        totals = part if totals is None else totals.add(part, fill_value=0)
    assert totals is not None
    print(float(totals.sum()))


# --- scipy ---------------------------------------------------------------------------


def scipy_butterfly(size: int) -> None:
    """CSR butterfly (hypercube) graph on size*1k nodes: log2(n) edges per node, Laplacian."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import laplacian

    n = size * 1000
    nodes = np.arange(n, dtype=np.int32)
    rows, cols = [], []
    for bit in range(n.bit_length()):
        partner = nodes ^ np.int32(1 << bit)
        keep = partner < n
        rows.append(nodes[keep])
        cols.append(partner[keep])
    r, c = np.concatenate(rows), np.concatenate(cols)
    adj = coo_matrix((np.ones(r.size, dtype=np.float32), (r, c)), shape=(n, n)).tocsr()
    lap = laplacian(adj)
    x = np.ones(n, dtype=np.float32)
    print(adj.nnz, float((lap @ x).sum()))


def scipy_poisson(size: int) -> None:
    """Conjugate gradients on the 2-D Poisson matrix of a size x size grid."""
    import numpy as np
    from scipy.sparse import diags, identity, kron
    from scipy.sparse.linalg import cg

    t = diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(size, size))
    a = (kron(t, identity(size)) + kron(identity(size), t)).tocsr()
    b = np.ones(size * size)
    x, _ = cg(a, b, maxiter=30)
    print(float(x.max()))


def scipy_lu(size: int) -> None:
    """LU factorisation and solve of a dense size x size system (scipy.linalg)."""
    import numpy as np
    from scipy.linalg import lu_factor, lu_solve

    rng = np.random.default_rng(size)
    a = rng.random((size, size)) + size * np.eye(size)
    lu = lu_factor(a)
    print(float(lu_solve(lu, rng.random(size)).sum()))


# --- scikit-learn, scikit-image, Pillow ---------------------------------------------


def sklearn_logreg(size: int) -> None:
    """Logistic regression on size*1k rows x 20 features (scikit-learn imports: the baseline)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(size)
    x = rng.standard_normal((size * 1000, 20))
    y = (x[:, 0] + 0.5 * rng.standard_normal(x.shape[0]) > 0).astype(int)
    model = LogisticRegression(max_iter=30).fit(x, y)
    print(float(model.score(x, y)))


def sklearn_pairwise(size: int) -> None:
    """All pairwise Euclidean distances of size points in 16 dimensions, nearest per point."""
    import numpy as np
    from sklearn.metrics import pairwise_distances

    x = np.random.default_rng(size).standard_normal((size, 16))
    d = pairwise_distances(x)
    np.fill_diagonal(d, np.inf)
    print(float(d.min(axis=1).mean()))


def sklearn_pca(size: int) -> None:
    """PCA fitted on a fixed 300k x 20 reference sample, then applied to size*10k rows."""
    import numpy as np
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    reference = rng.standard_normal((300_000, 20))
    pca = PCA(n_components=5).fit(reference)
    del reference  # the fixed phase ends here; the rest grows with the data
    data = rng.standard_normal((size * 10_000, 20))
    print(float(np.abs(pca.transform(data)).mean()))


def skimage_registration(size: int) -> None:
    """Sub-pixel phase correlation of the camera image rescaled to size x size."""
    import numpy as np
    from scipy.ndimage import shift
    from skimage import data
    from skimage.registration import phase_cross_correlation
    from skimage.transform import resize

    image = resize(data.camera(), (size, size))
    moved = shift(image, (3.2, -1.5))
    found, _, _ = phase_cross_correlation(image, moved, upsample_factor=10)
    print(np.round(found, 1))


def pillow_rotate(size: int) -> None:
    """Noise image of size x size, RGB, rotated 30 degrees (expanded), saved as JPEG."""
    from PIL import Image

    grey = Image.effect_noise((size, size), 40)
    rgb = Image.merge("RGB", (grey, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grey))
    rotated = rgb.rotate(30, expand=True, resample=Image.Resampling.BILINEAR)
    out = io.BytesIO()
    rotated.save(out, "JPEG", quality=85)
    print(rotated.size, out.tell())


def pillow_thumbnails(size: int) -> None:
    """size images of 768 x 768, one at a time: thumbnail, save as PNG, drop (streaming)."""
    from PIL import Image, ImageFilter

    total = 0
    for i in range(size):
        img = Image.effect_noise((768, 768), 20 + i % 30).filter(ImageFilter.BLUR)
        img.thumbnail((256, 256))
        out = io.BytesIO()
        img.save(out, "PNG")
        total += out.tell()
    print(total)


# --- sqlite3, json, zlib, lzma -------------------------------------------------------


def sqlite_cache(size: int) -> None:
    """Upsert size*5k events into an in-memory SQLite table of the last event per user."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE last (user TEXT PRIMARY KEY, n INTEGER, event TEXT) WITHOUT ROWID")
    rng = random.Random(size)
    # 200k possible users: the table grows as 200k * (1 - exp(-events / 200k)), ever slower.
    events = (
        (f"user{rng.randrange(200_000)}", f"{rng.random():.6f} " * 20) for _ in range(size * 5000)
    )
    upsert = "INSERT INTO last VALUES (?, 1, ?) ON CONFLICT DO UPDATE SET n = n + 1, event = ?2"
    db.executemany(upsert, events)
    print(db.execute("SELECT count(*), max(n) FROM last").fetchone())


def json_random_docs(size: int) -> None:
    """Round-trip size JSON documents of heavy-tailed (Pareto) length, new on every run."""
    import json

    rng = random.SystemRandom()
    docs = []
    for _ in range(size):
        records = min(50_000, int(1000 * rng.paretovariate(1.5)))
        docs.append([{"id": i, "v": rng.random(), "tags": ["a"] * (i % 4)} for i in range(records)])
    text = json.dumps(docs)
    del docs
    print(sum(len(d) for d in json.loads(text)), len(text))


def json_ndjson(size: int) -> None:
    """Stream size*10k newline-delimited JSON events, counting by type (bounded state)."""
    import json
    from collections import Counter

    rng = random.Random(size)
    counts: Counter[str] = Counter()
    for i in range(size * 10_000):
        line = json.dumps({"id": i, "type": f"t{rng.randrange(20)}", "v": rng.random()})
        counts[json.loads(line)["type"]] += 1
    print(counts.most_common(1))


def zlib_stream(size: int) -> None:
    """Compress and decompress size MiB in 1 MiB chunks with zlib streams (flat memory)."""
    import zlib

    import numpy as np

    rng = np.random.default_rng(size)
    comp, decomp = zlib.compressobj(6), zlib.decompressobj()
    out = 0
    for _ in range(size):
        chunk = rng.integers(0, 16, MIB, dtype=np.uint8).tobytes()
        out += len(decomp.decompress(comp.compress(chunk)))
    out += len(decomp.decompress(comp.flush()))
    print(out)


def lzma_dict(size: int) -> None:
    """Stream size*128 KiB through xz with a 2 MiB dictionary: its tables fill, then stop."""
    import lzma

    import numpy as np

    rng = np.random.default_rng(size)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 1, "dict_size": 2 * MIB}]
    comp = lzma.LZMACompressor(lzma.FORMAT_XZ, filters=filters)
    out = 0
    for _ in range(size):
        out += len(comp.compress(rng.integers(0, 64, MIB // 8, dtype=np.uint8).tobytes()))
    print(out + len(comp.flush()))


# --- networkx and plain Python containers --------------------------------------------


def networkx_circulant(size: int) -> None:
    """Circulant graph on size*100 nodes with jumps 1, 2, 4, ...: n log n edges; degrees."""
    import networkx as nx

    n = size * 100
    g = nx.circulant_graph(n, [1 << k for k in range((n - 1).bit_length() - 1)])
    print(g.number_of_edges(), max(d for _, d in g.degree()))


def networkx_components(size: int) -> None:
    """Critical random graph (unseeded) on size*1k nodes: hop distances in its largest cluster."""
    import networkx as nx
    from scipy.sparse.csgraph import shortest_path

    n = size * 1000
    g = nx.gnm_random_graph(n, n // 2)  # mean degree 1: the largest cluster's size varies a lot
    giant = g.subgraph(max(nx.connected_components(g), key=len))
    hops = shortest_path(nx.to_scipy_sparse_array(giant), unweighted=True)
    print(giant.number_of_nodes(), int(hops.max()))


def python_dict(size: int) -> None:
    """A dict of size*10k int keys to tuples: its hash table doubles at powers of two."""
    index = {i: (i, -i) for i in range(size * 10_000)}
    print(len(index), index[size])


def python_wordcount(size: int) -> None:
    """Count size*100k Zipf-distributed words in batches (the vocabulary grows sub-linearly)."""
    from collections import Counter

    import numpy as np

    rng = np.random.default_rng(size)
    counts: Counter[str] = Counter()
    for _ in range(size):
        ids = rng.zipf(1.3, 100_000)
        counts.update(f"w{i}" for i in ids.tolist())
    print(len(counts), counts.most_common(1))


# --- multiprocessing and subprocess pipelines ----------------------------------------


def _sorted_median(args: tuple[int, int]) -> float:
    import numpy as np

    seed, n = args
    return float(np.sort(np.random.default_rng(seed).standard_normal(n))[n // 2])


def mp_pool(size: int) -> None:
    """A 3-worker multiprocessing pool sorting 12 chunks of size*100k/12 numbers each."""
    from multiprocessing import get_context

    with get_context("spawn").Pool(3) as pool:
        print(sum(pool.map(_sorted_median, [(i, size * 100_000 // 12) for i in range(12)])))


_SHARED: list[object] = []


def _slice_energy(bounds: tuple[int, int]) -> float:
    import numpy as np

    data = _SHARED[0]
    assert isinstance(data, np.ndarray)
    part = data[bounds[0] : bounds[1]]
    return float(np.sum(np.log1p(part * part)))


def mp_fork(size: int) -> None:
    """Parent builds size*100k numbers; 3 forked workers read them copy-on-write."""
    from multiprocessing import get_context

    import numpy as np

    n = size * 100_000
    _SHARED.append(np.random.default_rng(size).standard_normal(n))
    bounds = [(i * n // 6, (i + 1) * n // 6) for i in range(6)]
    with get_context("fork").Pool(3) as pool:
        print(sum(pool.map(_slice_energy, bounds)))


def _frame_stats(args: tuple[int, int]) -> float:
    import numpy as np
    import pandas as pd

    seed, n = args
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"k": rng.integers(0, 500, n), "v": rng.standard_normal(n)})
    return float(df.groupby("k")["v"].median().sum())


def mp_pandas(size: int) -> None:
    """2 worker processes, each importing pandas, aggregate 4 frames of size*10k/4 rows."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        print(sum(pool.map(_frame_stats, [(i, size * 10_000 // 4) for i in range(4)])))


def _pipeline(size: int, middle: list[list[str]], consumer: str) -> None:
    """python (emit size*20k lines) | middle... | python consumer; checks every exit."""
    emit = (
        f"import random,sys\nr=random.Random({size})\nw=sys.stdout.write\n"
        f"for i in range({size * 20_000}): w('%d %.6f\\n' % (r.randrange(10**9), r.random()))"
    )
    procs = [subprocess.Popen([sys.executable, "-c", emit], stdout=subprocess.PIPE)]
    for argv in middle:
        procs.append(subprocess.Popen(argv, stdin=procs[-1].stdout, stdout=subprocess.PIPE))
    procs.append(subprocess.Popen([sys.executable, "-c", consumer], stdin=procs[-1].stdout))
    for p in procs[:-1]:
        assert p.stdout is not None
        p.stdout.close()  # only the next process holds the pipe, so SIGPIPE can reach
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"pipeline failed: exit codes {codes}")


def subprocess_sort(size: int) -> None:
    """python | sort -n -S 16M | python: sort holds its input up to its 16 MiB buffer."""
    _pipeline(
        size,
        [["sort", "-n", "-S", "16M", "-T", "/tmp"]],
        "import sys\nprint(sum(1 for _ in sys.stdin))",
    )


def subprocess_gzip(size: int) -> None:
    """python | gzip -1 | gzip -dc | python: a streaming pipeline of four processes."""
    _pipeline(
        size,
        [["gzip", "-1", "-c"], ["gzip", "-dc"]],
        "import sys\nprint(sum(len(l) for l in sys.stdin))",
    )


# --- the table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One corpus program: its kind of code, the growth pattern it is built to show, and s0.

    It is measured at round(s0 * sqrt(2)**i), i = 0..10 (32x): s0 keeps the largest run
    under ~4 s and ~2.5 GiB on the 2-core machine the corpus was measured on.
    """

    run: Callable[[int], None]
    kind: str
    pattern: str
    s0: int


PATTERNS = (
    "linear-baseline",  # linear growth on a large fixed baseline
    "knee",  # flat up to a size, then growing
    "quadratic",  # quadratic in a scale parameter (side of an image or matrix)
    "nlogn",
    "sublinear",  # grows, ever more slowly, or saturates
    "flat",  # streaming: the same peak at every size
    "steps",  # doubling buffers: jumps at powers of two
    "noisy",  # run-to-run noise or non-monotone small sizes
    "multiprocess",  # a job of several processes
)

WORKLOADS: dict[str, Workload] = {
    "numpy_lookup": Workload(numpy_lookup, "numpy", "linear-baseline", 8),
    "numpy_sparse_table": Workload(numpy_sparse_table, "numpy", "nlogn", 32),
    "numpy_gradient": Workload(numpy_gradient, "numpy", "quadratic", 180),
    "numpy_fft_pow2": Workload(numpy_fft_pow2, "numpy", "steps", 16),
    "numpy_doubling": Workload(numpy_doubling, "numpy", "steps", 150),
    "numpy_fft_exact": Workload(numpy_fft_exact, "numpy", "noisy", 80),
    "numpy_pool": Workload(numpy_pool, "numpy", "knee", 32),
    "numpy_threads": Workload(numpy_threads, "numpy", "noisy", 8),
    "pandas_groupby": Workload(pandas_groupby, "pandas", "linear-baseline", 32),
    "pandas_merge": Workload(pandas_merge, "pandas", "knee", 8),
    "pandas_chunked": Workload(pandas_chunked, "pandas", "flat", 4),
    "scipy_butterfly": Workload(scipy_butterfly, "scipy-sparse", "nlogn", 20),
    "scipy_poisson": Workload(scipy_poisson, "scipy-sparse", "quadratic", 45),
    "scipy_lu": Workload(scipy_lu, "scipy-dense", "quadratic", 140),
    "sklearn_logreg": Workload(sklearn_logreg, "scikit-learn", "linear-baseline", 16),
    "sklearn_pairwise": Workload(sklearn_pairwise, "scikit-learn", "quadratic", 280),
    "sklearn_pca": Workload(sklearn_pca, "scikit-learn", "knee", 8),
    "skimage_registration": Workload(skimage_registration, "scikit-image", "quadratic", 80),
    "pillow_rotate": Workload(pillow_rotate, "pillow", "quadratic", 160),
    "pillow_thumbnails": Workload(pillow_thumbnails, "pillow", "flat", 2),
    "sqlite_cache": Workload(sqlite_cache, "sqlite3", "sublinear", 4),
    "json_random_docs": Workload(json_random_docs, "json", "noisy", 2),
    "json_ndjson": Workload(json_ndjson, "json", "flat", 2),
    "zlib_stream": Workload(zlib_stream, "zlib", "flat", 2),
    "lzma_dict": Workload(lzma_dict, "lzma", "sublinear", 2),
    "networkx_circulant": Workload(networkx_circulant, "networkx", "nlogn", 20),
    "networkx_components": Workload(networkx_components, "networkx", "noisy", 4),
    "python_dict": Workload(python_dict, "python-containers", "steps", 25),
    "python_wordcount": Workload(python_wordcount, "python-containers", "sublinear", 2),
    "mp_pool": Workload(mp_pool, "multiprocessing", "multiprocess", 32),
    "mp_fork": Workload(mp_fork, "multiprocessing", "multiprocess", 16),
    "mp_pandas": Workload(mp_pandas, "multiprocessing", "multiprocess", 32),
    "subprocess_sort": Workload(subprocess_sort, "subprocess", "multiprocess", 2),
    "subprocess_gzip": Workload(subprocess_gzip, "subprocess", "flat", 2),
}


def sizes(workload: Workload) -> list[int]:
    """The 11 measured sizes: s0 * sqrt(2)**i, i = 0..10, rounded (a 32x span)."""
    return [round(workload.s0 * 2 ** (i / 2)) for i in range(11)]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in WORKLOADS or not argv[1].isdigit():
        names = ", ".join(WORKLOADS)
        print(f"usage: programs.py NAME SIZE (a positive integer); NAME: {names}", file=sys.stderr)
        return 2
    WORKLOADS[argv[0]].run(int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
