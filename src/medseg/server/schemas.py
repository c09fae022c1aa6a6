"""Request and response bodies of the REST API (pydantic models; shown on ``/docs``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medseg.errors import InputError
from medseg.server.encoding import MAX_RLE_SIZE, check_rle

__all__ = [
    "ViewName",
    "Encoding",
    "ImageSummary",
    "ImageDetail",
    "ToolSupport",
    "ModelInfo",
    "ServerInfo",
    "SessionRequest",
    "SessionInfo",
    "PrepareRequest",
    "PrepareResponse",
    "Scribble",
    "PredictRequest",
    "EncodedMask",
    "Propagated",
    "PredictResponse",
    "LabelDef",
    "RLE",
    "LabelSaveRequest",
    "VersionOut",
    "LabelData",
    "AutoModelInfo",
    "AutoRequest",
    "AutoClass",
    "AutoResponse",
    "public_errors",
    "request_validation_handler",
]

ViewName = Literal["axial", "coronal", "sagittal"]
Encoding = Literal["rle", "png"]
Coord = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSummary(BaseModel):
    id: str
    name: str
    format: str
    modality: str | None
    size_bytes: int
    dicom: bool
    versions: int = Field(description="number of saved label versions")


class ImageDetail(ImageSummary):
    ndim: int = Field(description="2 or 3 spatial dimensions")
    shape: list[int] = Field(description="spatial shape in array order: (H, W) or (Z, Y, X)")
    spacing: list[float]
    rgb: bool
    dtype: str
    views: list[str]
    view_shapes: dict[str, list[int]] = Field(description="per view: (slices, rows, cols)")
    view_axes: dict[str, dict[str, int | bool | None]] = Field(
        description="per view: array axes of slices (depth), rows and cols; flip_rows/cols"
    )
    windows: list[str]
    default_window: str
    auto_window: list[float] = Field(description="(level, width) of the 'auto' window")
    window_presets: dict[str, list[float]] = Field(description="(level, width) per window")
    value_range: list[float]


class ToolSupport(BaseModel):
    enabled: bool
    reason: str = ""


class ModelInfo(BaseModel):
    name: str
    prompt_kinds: list[str]
    multimask: bool
    refine_default: bool = False
    tools: dict[str, ToolSupport]
    config: dict[str, object]


class AutoModelInfo(BaseModel):
    name: str = Field(description="the model folder's name")
    path: str
    configuration: str = Field(description="2d or 3d network")
    dims: int = Field(description="2 or 3: the images the model segments")
    channels: list[str]
    labels: dict[str, str] = Field(description="foreground label value -> class name")
    folds: list[str]


class ServerInfo(BaseModel):
    version: str
    auth: bool
    datastore: str
    model: ModelInfo
    auto_model: AutoModelInfo | None = Field(
        None, description="the automatic model of POST /api/sessions/{id}/auto, if any"
    )
    max_upload_bytes: int
    upload_types: list[str]


class SessionRequest(_Strict):
    image_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    view: ViewName = "axial"
    slice_index: int | None = Field(None, ge=0, description="3D: slice to embed now")


class SessionInfo(BaseModel):
    session_id: str
    image: ImageDetail
    model: ModelInfo
    embed_ms: float = Field(description="time to compute the (first) embedding")
    latency_ms: float


class PrepareRequest(_Strict):
    view: ViewName = "axial"
    slice_index: int = Field(0, ge=0)


class PrepareResponse(BaseModel):
    view: str
    slice_index: int
    latency_ms: float


_Dim = Annotated[int, Field(ge=1, le=MAX_RLE_SIZE)]
_Value = Annotated[int, Field(ge=0, le=65535)]
_Count = Annotated[int, Field(ge=0, le=MAX_RLE_SIZE)]


class RLE(_Strict):
    """Run-length encoded mask or label map (see :mod:`medseg.server.encoding`); checked
    while parsed: values 0..65535, counts non-negative, as many values as counts, and the
    counts adding up to the size of ``shape``."""

    encoding: Literal["rle"] = "rle"
    shape: list[_Dim] = Field(min_length=2, max_length=3)
    values: list[_Value]
    counts: list[_Count]

    @model_validator(mode="after")
    def _consistent(self) -> RLE:
        try:
            check_rle(self.shape, self.values, self.counts)
        except InputError as exc:
            raise ValueError(str(exc)) from exc
        return self


class Scribble(_Strict):
    points: list[tuple[Coord, Coord]] = Field(min_length=1, max_length=4096)
    label: Literal[0, 1] = 1


class PredictRequest(_Strict):
    view: ViewName = "axial"
    slice_index: int | None = Field(None, ge=0, description="3D: the slice of the prompts")
    box: tuple[Coord, Coord, Coord, Coord] | None = Field(None, description="(x0, y0, x1, y1)")
    points: list[tuple[Coord, Coord]] = Field(default_factory=list, max_length=256)
    point_labels: list[Literal[0, 1]] = Field(
        default_factory=list, description="1 = positive, 0 = negative; default all 1"
    )
    scribbles: list[Scribble] = Field(default_factory=list, max_length=64)
    mask_input: Literal["none", "previous", "mask"] = Field(
        "none",
        description="'previous': refine this session's last mask for label/view/slice; "
        "'mask': refine `mask` (e.g. the label's current mask on the slice)",
    )
    mask: RLE | None = Field(
        None, description="with mask_input='mask': the (rows, cols) mask of the prompted slice"
    )
    label: int = Field(1, ge=1, le=65535, description="target label (keys the previous mask)")
    propagate: bool = Field(False, description="3D: propagate through the volume")
    text: str | None = Field(
        None, min_length=1, max_length=200,
        description="a target's name ('left kidney'): a new object from text, optionally with "
        "correction clicks; no box, scribbles or mask_input with it",
    )  # fmt: skip
    encoding: Encoding = "rle"


class EncodedMask(BaseModel):
    encoding: Encoding
    shape: list[int]
    values: list[int] | None = None
    counts: list[int] | None = None
    png: str | None = Field(None, description="base64 1-bit PNG (3D blocks: slices stacked)")


class Propagated(BaseModel):
    start: int = Field(description="first slice (of the view) holding the object")
    stop: int = Field(description="last slice, inclusive")
    mask: EncodedMask = Field(description="(stop - start + 1, rows, cols) block")


class PredictResponse(BaseModel):
    view: str
    slice_index: int
    label: int
    mask: EncodedMask
    score: float
    area: int
    latency_ms: float = Field(description="server-side time for the whole request")
    model_ms: float = Field(description="time spent in the model (embedding + decoder)")
    propagated: Propagated | None = None
    found: bool | None = Field(None, description="text requests: False = target not in the image")
    target: str | None = Field(None, description="text requests: the vocabulary target named")


class LabelDef(_Strict):
    value: int = Field(ge=1, le=65535)
    name: str = Field(min_length=1, max_length=64)
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class LabelSaveRequest(_Strict):
    labels: list[LabelDef] = Field(max_length=1024)
    data: RLE
    note: str = Field("", max_length=500)


class VersionOut(BaseModel):
    version: int
    file: str
    created: str
    labels: list[LabelDef]
    note: str
    restored_from: int | None
    voxels: dict[str, int]


class LabelData(BaseModel):
    version: VersionOut
    data: RLE


class AutoRequest(_Strict):
    encoding: Encoding = "rle"


class AutoClass(BaseModel):
    value: int = Field(description="label value in the model's label map")
    name: str = Field(description="class name from the model's dataset.json")
    voxels: int
    mask: EncodedMask = Field(description="the class's mask over the whole image (array order)")


class AutoResponse(BaseModel):
    model: str
    shape: list[int] = Field(description="the image's spatial shape: (H, W) or (Z, Y, X)")
    classes: list[AutoClass]
    model_ms: float = Field(description="time in the automatic model (0: cached result)")
    latency_ms: float


# ---- error bodies ------------------------------------------------------------------------
def public_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as JSON-safe dicts: ``loc``, ``msg`` and ``type`` only.

    pydantic's errors also carry the rejected ``input`` (and ``ctx``), which may be NaN or
    infinity (not JSON: rendering them failed with HTTP 500) or megabytes of a body.
    """
    out = []
    for err in errors:
        loc = [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


async def request_validation_handler(request: Any, exc: Any) -> Any:
    """FastAPI handler for ``RequestValidationError``: 422 with :func:`public_errors`."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": public_errors(exc.errors())}, status_code=422)
