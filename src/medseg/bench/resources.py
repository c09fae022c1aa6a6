"""Peak memory (resident set size) of this process, per benchmarked model.

Linux: the kernel's high-water mark ``VmHWM`` from ``/proc/self/status``, reset before each
model by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), so each model's peak is
its own. Elsewhere, or when the reset is refused, ``ru_maxrss`` from ``getrusage``: the
peak since the process started (then a later model's peak includes the earlier ones'). The
method used is stored next to every number.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PeakMemory", "current_rss_mb"]

log = logging.getLogger(__name__)

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MiB
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mb() -> float | None:
    """Resident set size now, in MiB (None where ``/proc`` is unavailable)."""
    return _status_mb("VmRSS")


def _ru_maxrss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


@dataclass
class PeakMemory:
    """Measure the peak RSS between :meth:`reset` and :meth:`peak_mb`."""

    method: str = "unavailable"
    baseline_mb: float | None = None

    def reset(self) -> None:
        """Start a measurement: reset the kernel's peak where possible, note the baseline."""
        self.baseline_mb = current_rss_mb()
        try:
            _CLEAR_REFS.write_text("5")
            if _status_mb("VmHWM") is not None:
                self.method = "VmHWM (/proc/self/status, reset per model via clear_refs)"
                return
        except OSError as exc:
            log.debug("cannot reset the peak RSS: %s", exc)
        if _ru_maxrss_mb() is not None:
            self.method = "ru_maxrss (getrusage; process peak since start, not reset per model)"
        else:
            self.method = "unavailable"

    def peak_mb(self) -> float | None:
        """Peak RSS in MiB since :meth:`reset` (see the method for its meaning)."""
        if self.method.startswith("VmHWM"):
            return _status_mb("VmHWM")
        if self.method.startswith("ru_maxrss"):
            return _ru_maxrss_mb()
        return None
