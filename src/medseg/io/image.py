"""Image and LabelMap: an array plus the geometry that places it in the patient.

Axis order and geometry conventions (used by every part of medseg):

- 2D arrays are ``(H, W)`` or ``(H, W, C)``: rows then columns.
- 3D arrays are ``(Z, Y, X)`` or ``(Z, Y, X, C)``: slices, rows, columns. This is the
  order SimpleITK's ``GetArrayFromImage`` returns.
- ``spacing`` is given **in array axis order**: 2D ``(sy, sx)``, 3D ``(sz, sy, sx)``, in mm
  (or 1.0 where the source says nothing), so ``spacing[i]`` belongs to ``array.shape[i]``.
- ``origin`` and ``direction`` are in **physical order** as ITK/DICOM define them (LPS):
  ``origin`` is ``(x, y[, z])`` of the centre of the first voxel, ``direction`` is a
  ``(D, D)`` matrix whose column ``j`` is the physical direction of the index axis ``j``,
  with index axis 0 = x = the array's *last* spatial axis.
- Points and prompts elsewhere in medseg are ``(x, y[, z])`` in pixel/voxel indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from medseg.errors import InputError

__all__ = ["Image", "LabelMap"]


def _as_tuple(values: Any, n: int, name: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in np.asarray(values, dtype=float).ravel())
    if len(out) != n:
        raise InputError(f"{name} needs {n} values for a {n}D image, got {len(out)}")
    if not all(np.isfinite(out)):
        raise InputError(f"{name} must be finite, got {out}")
    return out


@dataclass(frozen=True, eq=False)
class Image:
    """A 2D or 3D image with geometry.

    Attributes:
        array: 2D ``(H, W[, C])`` or 3D ``(Z, Y, X[, C])`` array.
        spacing: voxel size in mm per spatial axis, in array order (``(sy, sx)`` or
            ``(sz, sy, sx)``).
        origin: physical position ``(x, y[, z])`` of the first voxel (LPS, mm).
        direction: ``(D, D)`` direction cosines in physical order (ITK convention).
        modality: ``"CT"``, ``"MR"``, ``"XR"``, ``"RGB"``, ... or ``"unknown"``.
        channels: True when the last array axis holds channels (RGB or multi-sequence).
        meta: source metadata (path, format, DICOM UIDs, ...).
    """

    array: np.ndarray
    spacing: tuple[float, ...] = ()
    origin: tuple[float, ...] = ()
    direction: np.ndarray | None = None
    modality: str = "unknown"
    channels: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        ndim = arr.ndim - (1 if self.channels else 0)
        if ndim not in (2, 3):
            raise InputError(
                f"image must be 2D or 3D (plus an optional channel axis), got shape {arr.shape}"
            )
        object.__setattr__(self, "array", arr)
        spacing = self.spacing or (1.0,) * ndim
        object.__setattr__(self, "spacing", _as_tuple(spacing, ndim, "spacing"))
        if any(s <= 0 for s in self.spacing):
            raise InputError(f"spacing must be positive, got {self.spacing}")
        origin = self.origin or (0.0,) * ndim
        object.__setattr__(self, "origin", _as_tuple(origin, ndim, "origin"))
        direction = np.eye(ndim) if self.direction is None else np.asarray(self.direction, float)
        if direction.shape != (ndim, ndim):
            direction = direction.reshape(ndim, ndim)
        object.__setattr__(self, "direction", direction)

    # ---- shape helpers -------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.array.ndim - (1 if self.channels else 0)

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape in array order (channels excluded)."""
        return tuple(self.array.shape[: self.ndim])

    @property
    def num_channels(self) -> int:
        return int(self.array.shape[-1]) if self.channels else 1

    @property
    def is_rgb(self) -> bool:
        return self.channels and self.num_channels in (3, 4) and self.ndim == 2

    @property
    def affine(self) -> np.ndarray:
        """4x4 (3D) or 3x3 (2D) index-to-physical LPS matrix, index in ITK order (x, y[, z])."""
        n = self.ndim
        itk_spacing = np.array(self.spacing[::-1])
        aff = np.eye(n + 1)
        aff[:n, :n] = self.direction * itk_spacing[None, :]
        aff[:n, n] = self.origin
        return aff

    @property
    def orientation(self) -> str:
        """Orientation code in ITK/DICOM LPS letters per index axis (x, y[, z]), e.g. ``"LPS"``.

        For 3D images, the RAS-style nibabel code of the same grid is ``nibabel_orientation``.
        """
        letters = [("L", "R"), ("P", "A"), ("S", "I")]
        out = []
        for j in range(self.ndim):
            col = self.direction[:, j]
            k = int(np.argmax(np.abs(col)))
            out.append(letters[k][0] if col[k] > 0 else letters[k][1])
        return "".join(out)

    @property
    def nibabel_orientation(self) -> str:
        """The axis code nibabel's ``aff2axcodes`` prints for the same grid (RAS+ world).

        Computed independently from the RAS affine (LPS affine with x and y negated). nibabel
        and ITK's DICOM orientation both name the direction each index axis points *to*, so
        the letters equal ``orientation``: an ITK identity-direction grid is ``"LPS"`` in both
        (not ``"RAS"``); only the world coordinate signs differ. 2D grids get ``S`` appended
        internally and dropped again.
        """
        from nibabel.orientations import aff2axcodes

        n = self.ndim
        lps = np.eye(4)
        lps[:n, :n] = self.direction * np.array(self.spacing[::-1])[None, :]
        ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
        return "".join(aff2axcodes(ras))[:n]

    def same_geometry(self, other: Image, atol: float = 1e-4) -> bool:
        """True when both images share spatial shape, spacing, origin and direction."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def with_array(self, array: np.ndarray, **changes: Any) -> Image:
        """A copy with a new array (same geometry unless overridden)."""
        return replace(self, array=array, **changes)

    def describe(self) -> dict[str, Any]:
        """Summary used by ``medseg info``."""
        arr = self.array
        finite = arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr
        return {
            "shape": list(arr.shape),
            "spatial_dims": self.ndim,
            "channels": self.num_channels,
            "dtype": str(arr.dtype),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "orientation": self.orientation,
            "modality": self.modality,
            "min": float(finite.min()) if finite.size else float("nan"),
            "max": float(finite.max()) if finite.size else float("nan"),
            "source": self.meta.get("path"),
            "format": self.meta.get("format"),
        }


@dataclass(frozen=True, eq=False)
class LabelMap(Image):
    """An integer label image (0 = background) with optional names per label value."""

    label_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)):
                raise InputError("label map contains NaN or inf values")
            if not np.all(arr == np.round(arr)):
                raise InputError("label map contains non-integer values")
            if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max):
                raise InputError(f"label values out of range: {arr.min()}..{arr.max()}")
            arr = arr.astype(np.uint16 if arr.size and arr.max() > 255 else np.uint8)
        elif not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"label map must hold integers, got dtype {arr.dtype}")
        if arr.size and arr.min() < 0:
            raise InputError(f"label map contains negative values (min {arr.min()})")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "channels", False)
        object.__setattr__(
            self, "label_names", {int(k): str(v) for k, v in self.label_names.items()}
        )
        super().__post_init__()

    @property
    def labels(self) -> list[int]:
        """Sorted non-zero label values present."""
        values = np.unique(self.array)
        return [int(v) for v in values if v != 0]

    def mask(self, label: int) -> np.ndarray:
        """Boolean mask of one label value, same shape as the array."""
        return self.array == label

    @classmethod
    def like(
        cls, image: Image, array: np.ndarray, label_names: dict[int, str] | None = None
    ) -> LabelMap:
        """A label map on the grid of ``image`` (spatial shape must match)."""
        arr = np.asarray(array)
        if tuple(arr.shape) != image.shape:
            raise InputError(f"label shape {arr.shape} does not match image shape {image.shape}")
        return cls(
            array=arr,
            spacing=image.spacing,
            origin=image.origin,
            direction=image.direction,
            modality="SEG",
            meta={k: v for k, v in image.meta.items() if k in ("path", "format", "dicom")},
            label_names=label_names or {},
        )
