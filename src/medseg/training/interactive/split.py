"""The fixed held-out split of ``../shared/data`` for ``medseg-interactive``.

Whole cases are held out (never trained on) and used for evaluation; datasets listed with
``"*"`` are held out entirely. Anything not listed is used for training. The same table is
in ``docs/models.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["HELD_OUT", "is_held_out", "write_heldout_view"]

HELD_OUT: dict[str, tuple[str, ...]] = {
    # the last 6 of 30 consecutive slices: a block, since neighbours are correlated
    "isbi2012_em": tuple(f"train_{i:02d}" for i in range(24, 30)),
    "miccai15_nuclei": ("image06", "image07", "image14", "image15"),
    "sammed2d_demo": ("amos_0004_75", "s0619_32"),  # the source's test split
    "kvasir_seg_sample": ("cju0roawvklrq0799vmjorwfv", "cju0rx1idathl0835detmsp84"),
    "ham10000_isic_sample": ("ISIC_0027533", "ISIC_0027800"),
    "cxr_lung_demo": ("cxr_4",),
    "stardist_nuclei": ("*",),  # fluorescence microscopy: a modality never trained on
    "brats2015_deepmedic": ("brats_2013_pat0001_1", "brats_2013_pat0002_1"),  # test split
    "totalseg_ref": ("example_ct_dicom",),
    "mricron_atlas": ("*",),  # brain parcels (AAL): never trained on
}


def is_held_out(dataset: str, case: str) -> bool:
    """True when ``case`` of ``dataset`` belongs to the held-out evaluation set."""
    held = HELD_OUT.get(dataset, ())
    return "*" in held or case in held


def write_heldout_view(shared_root: str | Path, out: str | Path) -> list[Path]:
    """Symlink the held-out cases of ``shared_root`` into ``out/<dataset>/{images,labels}``
    (plus a ``manifest.json`` with each dataset's ``task``), for ``medseg bench``.

    Returns the dataset folders written.
    """
    root, out = Path(shared_root), Path(out)
    manifest = json.loads((root / "manifest.json").read_text())
    written, kept = [], []
    for ds in manifest["datasets"]:
        cases = [c for c in ds["cases"] if c.get("label") and is_held_out(ds["name"], c["id"])]
        if not cases:
            continue
        folder = out / ds["name"]
        for c in cases:
            for rel in [*c["images"][:1], c["label"]]:
                link = folder / Path(rel).relative_to(ds["name"])
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to((root / rel).resolve())
        kept.append({"name": ds["name"], "task": ds["task"], "dims": ds["dims"]})
        written.append(folder)
    (out / "manifest.json").write_text(json.dumps({"datasets": kept}, indent=1))
    return written
