"""memwatch: how much memory a job really needs (RAM + swap, whole process tree)."""

from typing import TYPE_CHECKING

from .errors import MemwatchError
from .history import History, HistoryRun
from .measures import Bounds, CgroupPeak, Peak, Plateau, ProcMem, RunSummary, Sample
from .run import measure

if TYPE_CHECKING:
    from .model import Measurement, Model, Prediction, ShapeFit, fit, predict

__version__ = "0.1.0"

_MODEL_NAMES = {"Measurement", "Model", "Prediction", "ShapeFit", "fit", "predict"}


def __getattr__(name: str) -> object:
    # The model needs numpy; loaded on first use so that `memwatch run` stays light.
    if name in _MODEL_NAMES:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'memwatch' has no attribute {name!r}")


__all__ = [
    "Bounds",
    "CgroupPeak",
    "History",
    "HistoryRun",
    "Measurement",
    "MemwatchError",
    "Model",
    "Peak",
    "Plateau",
    "Prediction",
    "ProcMem",
    "RunSummary",
    "Sample",
    "ShapeFit",
    "__version__",
    "fit",
    "measure",
    "predict",
]
