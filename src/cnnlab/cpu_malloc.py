"""Keep freed memory in the process instead of handing it back to the OS every step.

glibc's malloc serves blocks above its mmap threshold with fresh ``mmap`` calls and trims
the heap after large frees, so each training step's activations and gradients come back
as new pages that fault in on first touch. On a CPU that costs 10-20% of a MyCNN step and
makes epoch times jitter (experiments/benchmark). Raising the two thresholds lets freed
blocks be reused. It changes no arithmetic: torch aligns its CPU tensors itself.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MAX_MB = 2047  # mallopt takes a C int of bytes


def keep_freed_memory(mmap_threshold_mb: int, trim_threshold_mb: int) -> bool:
    """Set glibc's thresholds for this process; False where malloc is not glibc's."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another libc: leave it alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, int(mmap_threshold_mb) << 20)
        and mallopt(M_TRIM_THRESHOLD, int(trim_threshold_mb) << 20)
    )
