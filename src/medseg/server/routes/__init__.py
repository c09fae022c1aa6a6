"""API routers: ``system`` (info), ``images`` (list, slices, upload), ``sessions`` (predict),
``labels`` (versions, restore, export)."""

from __future__ import annotations

__all__: list[str] = []
