"""Limits shared by the model, the config file and the command line, declared once.

Kept apart from model.py so that the CLI can show them without importing numpy: a plain
`memwatch run` must stay light (numpy alone adds ~14 MiB to memwatch's own peak).
"""

DEFAULT_MARGIN = 0.10  # the classic recipe's 10 %, kept so the numbers compare
WARN_EXTRAPOLATION = 4.0  # beyond this many times the largest measured size: a warning
REFUSE_EXTRAPOLATION = 16.0  # beyond this: no prediction without --force
# The adaptive sweep (`memwatch sweep --target`): its first size without --start, and the
# largest size it may run without --max-size, as fractions of the target.
START_FRACTION = 1 / 32
MAX_FRACTION = 1 / 2

# The sampling interval, for `memwatch run --interval` and the config's interval keys.
MIN_INTERVAL_S = 0.001
MAX_INTERVAL_S = 3600.0  # beyond threading.TIMEOUT_MAX the sampler's wait would overflow
MAX_PID = 4194304  # PID_MAX_LIMIT on 64-bit Linux: a config's pid selector
