"""Every image and label in ../shared/data loads with the shape, spacing and orientation
the manifest records (skipped when the data is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.io import load, load_label


def _cases(manifest, dims):
    for ds in manifest["datasets"]:
        if ds["dims"] == dims:
            for case in ds["cases"]:
                yield ds, case


@pytest.mark.slow  # every real 2D file (~2 s); fast loop: tests/io/test_roundtrip.py per format
def test_every_2d_image_and_label(shared_data, manifest):
    count = 0
    for _, case in _cases(manifest, 2):
        for rel in case["images"]:
            img = load(shared_data / rel)
            assert list(img.array.shape) == case["shape"], rel
            assert img.channels == (len(case["shape"]) == 3), rel
            count += 1
        if case["label"]:
            lab = load_label(shared_data / case["label"])
            assert list(lab.shape) == case["shape"][:2], case["label"]
            if "label_values" in case:
                assert lab.labels == case["label_values"], case["label"]
            else:
                assert lab.labels == list(range(1, case["num_instances"] + 1)), case["label"]
            count += 1
    assert count > 100


def test_every_3d_image_and_label(shared_data, manifest):
    for _, case in _cases(manifest, 3):
        paths = [p for p in case["images"] if p.endswith((".nii", ".nii.gz"))]
        if not paths:  # DICOM-only case, checked below
            continue
        expected = tuple(case["shape"][::-1])  # manifest: nibabel (x, y, z); medseg: (Z, Y, X)
        for rel in paths:
            img = load(shared_data / rel)
            assert img.shape == expected, rel
            np.testing.assert_allclose(img.spacing, case["spacing"][::-1], rtol=1e-5)
            assert img.orientation == case["orientation"] == img.nibabel_orientation, rel
        if case["label"]:
            lab = load_label(shared_data / case["label"])
            assert lab.same_geometry(img, atol=1e-3), case["label"]
            assert lab.labels == case["label_values"], case["label"]


def test_every_pydicom_sample(shared_data, manifest):
    (ds,) = [d for d in manifest["datasets"] if d["name"] == "pydicom_samples"]
    for case in ds["cases"]:
        (rel,) = case["images"]
        img = load(shared_data / rel)
        extra = case["extra"]
        assert list(img.array.shape) == extra["pixel_array_shape"], rel
        assert img.modality == extra["modality"], rel
        assert img.channels == (extra["samples_per_pixel"] > 1), rel


def test_dicom_folders(shared_data, manifest):
    ct = load(shared_data / "monai_testing_data/dicom/CT_DICOM", irregular="mean")
    assert ct.shape == (4, 16, 16) and ct.modality == "CT"
    series = load(shared_data / "totalseg_ref/dicom/example_ct_dicom")
    nifti = load(shared_data / "totalseg_ref/images/example_ct_dicom.nii.gz")
    assert series.shape == nifti.shape == (20, 512, 512)
    # The NIfTI was made from these files and flipped along y into the label's LAS grid.
    assert series.orientation == "LPS" and nifti.orientation == "LAS"
    np.testing.assert_array_equal(nifti.array, series.array[:, ::-1, :])
    np.testing.assert_allclose(nifti.spacing, series.spacing, atol=1e-5)
    np.testing.assert_allclose(nifti.direction[:, 1], -series.direction[:, 1], atol=1e-6)
    last_row = np.asarray(series.origin) + series.direction[:, 1] * series.spacing[1] * 511
    np.testing.assert_allclose(nifti.origin, last_row, atol=1e-3)


def test_extra_masks_and_per_class_labels(shared_data, manifest):
    """Brain masks, FOV masks and per-class label folders listed in the cases' ``extra``."""
    checked = 0
    for dims in (2, 3):
        for _, case in _cases(manifest, dims):
            shape = tuple(case["shape"][::-1]) if dims == 3 else tuple(case["shape"][:2])
            for value in (case.get("extra") or {}).values():
                if not isinstance(value, str) or not (shared_data / value).exists():
                    continue
                target = shared_data / value
                files = sorted(target.iterdir()) if target.is_dir() else [target]
                for f in files:
                    if f.name.endswith((".nii.gz", ".png")):
                        assert load_label(f).shape == shape, f
                        checked += 1
    assert checked >= 117
