"""Fine-tuning LiteMedSAM's prompt encoder + mask decoder for clicks (``litemedsam-clicks``).

Modules: ``split`` (the fixed leave-datasets-out groups), ``data`` (the cached LiteMedSAM
embeddings and their targets), ``trainer`` (SAM-style iterative click training). Torch is
imported only where used. Scripts: ``benchmarks/foundation_clicks_cache.py`` (build the
cache), ``benchmarks/train_foundation_clicks.py`` (train).
"""

from __future__ import annotations

from medseg.training.foundation.split import LEAVE_OUT_GROUPS, group_of

__all__ = ["LEAVE_OUT_GROUPS", "group_of"]
