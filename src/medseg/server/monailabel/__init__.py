"""Helpers of the MONAI Label-compatible API (:mod:`medseg.server.routes.monailabel`):
``params`` (the ``params`` JSON of ``/infer``: clicks, label names, result format),
``images`` (image references, uploads, label files), ``infer`` (clicks -> label map with
the server's models) and ``results`` (result files and multipart responses)."""

from __future__ import annotations

__all__: list[str] = []
