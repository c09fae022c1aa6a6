"""``ServerConfig``: every setting of ``medseg serve`` in one frozen dataclass.

Settings are given by argument (CLI flags or ``ServerConfig(...)`` in code); nothing is read
from environment variables. ``validate`` enforces the security rules that do not depend on
the running process: ``auth=False`` only on a loopback address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.errors import InputError
from medseg.io.limits import DEFAULT_LIMITS, SizeLimits

__all__ = ["ServerConfig", "is_loopback", "default_sample_store", "MiB"]

MiB = 1024 * 1024


def default_sample_store() -> Path:
    """Per-user folder where ``medseg serve`` writes the built-in sample when no folder is given."""
    return Path.home() / ".cache" / "medseg" / "sample_store"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Settings of the annotation server.

    Attributes:
        data_dir: the datastore folder (images; labels are written to ``data_dir/labels``).
        host, port: where the server listens (``host`` is also used to build the allowed
            ``Host`` headers, which blocks DNS-rebinding attacks on a loopback server).
        model: registered model name (``medseg.list_models()``) or a ``medseg auto`` model
            folder (its automatic part then serves the Auto endpoint, ``medseg-interactive``
            the prompts).
        model_options: model overrides, e.g. ``(("backend", "torch"),)``.
        auto_model: a ``medseg auto`` model folder for ``POST /api/sessions/{id}/auto``
            (the browser app's Auto button: per-class first masks); None: no Auto.
        auto_options: options of the automatic model (``PredictConfig`` fields: ``folds``,
            ``checkpoint``, ``tta``, ``postprocess``, ...), as for ``medseg auto predict``.
        auth: require the access token on every API request.
        token: the access token; None makes :func:`medseg.server.app.create_app` generate one.
        max_upload_bytes: largest accepted upload (all files of one upload together).
        max_image_voxels: largest image (voxels) an upload may hold.
        max_pixels, max_voxels: largest 2D image (pixels) / 3D volume (voxels) the server
            decodes, checked from the file header before decoding (``medseg.io.limits``).
        max_label_body_bytes: largest JSON body of a label save (RLE), separate from uploads.
        max_sessions: open annotation sessions kept (least recently used are closed).
        max_predictors: images (per view) whose embeddings are kept (LRU).
        slice_cache: slice embeddings kept per image and view (LRU; LiteMedSAM: 4 MiB each).
        max_images_loaded: decoded images kept in memory (LRU).
        cache_bytes: memory budget of all the server's caches together (decoded images,
            predictors and slice embeddings, remembered logits, automatic label maps,
            image descriptions); the least recently used entry of any goes first
            (:class:`medseg.inference.cache.MemoryBudget`). ``medseg serve --cache-mb``.
        cors_origins: origins allowed by CORS; empty (the default) sends no CORS headers.
        allowed_hosts: extra ``Host`` header values to accept besides the loopback names
            and ``host``; ``("*",)`` accepts any.
        warmup: run the image encoder once at start-up so the first click is fast.
        dicomweb: a DICOMweb server (``http(s)://host:port/prefix`` or ``dicomweb://...``;
            a ``.../studies/S`` URL lists that study only) whose image series are listed
            beside the folder's images (:mod:`medseg.server.dicomweb_source`); None: none.
        dicomweb_cache_bytes: disk space of fetched series in ``data_dir/.dicomweb/``
            (least recently used series are removed first; the newest is always kept).
        dicomweb_push: a MONAI Label label save (``PUT /datastore/label``) on a DICOMweb
            series also stores the label as a DICOM-SEG on the server (STOW-RS).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "default"
    model_options: tuple[tuple[str, Any], ...] = ()
    auto_model: Path | None = None
    auto_options: tuple[tuple[str, Any], ...] = ()
    auth: bool = True
    token: str | None = field(default=None, repr=False)
    max_upload_bytes: int = 512 * MiB
    max_image_voxels: int = 1024**3 // 2
    max_pixels: int = DEFAULT_LIMITS.max_pixels
    max_voxels: int = DEFAULT_LIMITS.max_voxels
    max_label_body_bytes: int = 64 * MiB
    max_sessions: int = 32
    max_predictors: int = 4
    slice_cache: int = 64
    max_images_loaded: int = 4
    cache_bytes: int = 2048 * MiB
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    warmup: bool = True
    dicomweb: str | None = None
    dicomweb_cache_bytes: int = 4096 * MiB
    dicomweb_push: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if self.auto_model is not None:
            object.__setattr__(self, "auto_model", Path(self.auto_model).expanduser())
        self.validate()

    def validate(self) -> None:
        """Raise ``InputError`` for unusable or unsafe settings."""
        if not self.auth and not is_loopback(self.host):
            raise InputError(
                f"--no-auth refuses to listen on {self.host!r}: without the token anyone on the "
                "network could read and change your data; use --host 127.0.0.1 or keep auth"
            )
        if not 0 <= int(self.port) <= 65535:
            raise InputError(f"port must be 0..65535, got {self.port}")
        if self.token is not None and len(self.token) < 16:
            raise InputError("the access token must be at least 16 characters long")
        for name in ("max_upload_bytes", "max_image_voxels", "max_sessions", "max_pixels",
                     "max_voxels", "max_label_body_bytes", "cache_bytes"):  # fmt: skip
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_predictors", "slice_cache", "max_images_loaded", "dicomweb_cache_bytes"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dicomweb is not None:
            from medseg.io.dicomweb import parse_dicomweb_url

            parse_dicomweb_url(self.dicomweb)  # InputError for a malformed URL
        elif self.dicomweb_push:
            raise InputError("dicomweb_push stores labels on the DICOMweb server: give dicomweb")

    @property
    def size_limits(self) -> SizeLimits:
        """``max_pixels``/``max_voxels`` as the readers' :class:`SizeLimits`."""
        return SizeLimits(int(self.max_pixels), int(self.max_voxels))

    @property
    def host_names(self) -> tuple[str, ...]:
        """``Host`` header names the server answers to (``("*",)``: any)."""
        if "*" in self.allowed_hosts or self.host in ("0.0.0.0", "::", ""):
            return ("*",)
        names = {"localhost", "127.0.0.1", "::1", "[::1]", self.host, *self.allowed_hosts}
        return tuple(sorted(names))

    def url(self, token: str | None = None) -> str:
        """The browser URL, with ``?token=`` when auth is on and ``token`` is given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/"
        return f"{base}?token={token}" if self.auth and token else base
