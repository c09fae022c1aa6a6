"""Overlay rendering and atomic output."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io import Image, atomic_path, load, render_overlay, save_overlay, to_display_rgb
from medseg.io.overlay import PALETTE


def test_to_display_rgb_gray_and_slice():
    img = Image(np.array([[0, 255]], np.uint8))
    np.testing.assert_array_equal(to_display_rgb(img), [[[0, 0, 0], [255, 255, 255]]])
    vol = Image(np.stack([np.zeros((1, 2)), np.full((1, 2), 40.0)]), modality="CT")
    assert to_display_rgb(vol, 1)[0, 0].tolist() == [128, 128, 128]
    with pytest.raises(InputError, match="slice 5 is outside"):
        to_display_rgb(vol, 5)


def test_render_overlay_colours_label_pixels(tmp_path):
    img = Image(np.zeros((4, 4), np.uint8))
    lab = np.zeros((4, 4), np.uint8)
    lab[1:3, 1:3] = 1
    rgb = render_overlay(img, lab, alpha=0.5)
    # Every pixel of a 2x2 square is on its inner boundary: full palette colour.
    np.testing.assert_array_equal(rgb[1, 1], PALETTE[0])
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])
    with pytest.raises(InputError, match="does not match image shape"):
        render_overlay(img, np.zeros((3, 3)))
    path = save_overlay(tmp_path / "o.png", img, lab, alpha=0.5)
    np.testing.assert_array_equal(load(path).array, rgb)


def test_atomic_path_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "f.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == target.parent
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.nii.gz"]


def test_atomic_path_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "new.txt") as tmp:
            tmp.write_text("x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644
        os.chmod(tmp_path / "new.txt", 0o640)
        with atomic_path(tmp_path / "new.txt") as tmp:
            tmp.write_text("y")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_import_medseg_io_is_light():
    code = (
        "import sys, medseg.io; "
        "print(sorted(m for m in ('torch', 'SimpleITK', 'pydicom', 'highdicom', 'nibabel', "
        "'PIL', 'tifffile') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
