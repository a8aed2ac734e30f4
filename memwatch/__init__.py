"""memwatch: how much memory a job really needs (RAM + swap, whole process tree)."""

from .errors import MemwatchError
from .run import measure
from .types import Bounds, CgroupPeak, Peak, Plateau, ProcMem, RunSummary, Sample

__version__ = "0.1.0"

__all__ = [
    "Bounds",
    "CgroupPeak",
    "MemwatchError",
    "Peak",
    "Plateau",
    "ProcMem",
    "RunSummary",
    "Sample",
    "__version__",
    "measure",
]
