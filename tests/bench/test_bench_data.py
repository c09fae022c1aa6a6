"""Dataset discovery, case checks and target planning on small hand-built folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.bench.data import discover, load_pair, materialize, plan_case
from medseg.errors import InputError
from medseg.io import Image, LabelMap, save


def _label_2d() -> np.ndarray:
    lab = np.zeros((20, 30), np.uint8)
    lab[2:6, 3:9] = 1  # 24 px
    lab[10:12, 2:4] = 2  # component 1: 4 px
    lab[15:18, 20:25] = 2  # component 2: 15 px
    return lab


def _folder_2d(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    img = np.full((20, 30), 40, np.uint8)
    save(img, root / "images" / "a.png")
    save(_label_2d(), root / "labels" / "a.png")
    save(img, root / "images" / "b.png")
    save(np.zeros((20, 30), np.uint8), root / "labels" / "b.png")  # no foreground
    save(img, root / "images" / "c.png")
    save(np.ones((10, 30), np.uint8), root / "labels" / "c.png")  # shape mismatch
    save(img, root / "images" / "d.png")  # no label
    (root / "images" / ".hidden.png").write_bytes(b"")
    return root


def test_discover_2d_folder_and_case_checks(tmp_path: Path) -> None:
    ds = discover(_folder_2d(tmp_path / "toy"))
    assert (ds.name, ds.layout, ds.instances, ds.modality) == ("toy", "images+labels", False, None)
    assert [c.case_id for c in ds.cases] == ["a", "b", "c", "d"]
    assert ds.cases[3].label is None
    image, label = load_pair(ds, ds.cases[0])
    assert image.shape == label.shape == (20, 30)
    with pytest.raises(InputError, match="no foreground"):
        load_pair(ds, ds.cases[1])
    with pytest.raises(InputError, match=r"image shape \(20, 30\) does not match label shape"):
        load_pair(ds, ds.cases[2])
    with pytest.raises(InputError, match="no label file"):
        load_pair(ds, ds.cases[3])


def test_plan_classes_components_min_area_and_sampling(tmp_path: Path) -> None:
    ds = discover(_folder_2d(tmp_path / "toy"))
    label = LabelMap(_label_2d())
    specs, skips = plan_case(ds, label, "a")
    assert [(s.target_id, s.label, s.component, s.area) for s in specs] == [
        ("label1", 1, None, 24), ("label2", 2, None, 19)
    ]  # fmt: skip
    specs, skips = plan_case(ds, label, "a", components=True, min_area=5)
    assert [(s.target_id, s.area) for s in specs] == [("label1_cc1", 24), ("label2_cc2", 15)]
    assert [(s.target_id, s.reason) for s in skips] == [
        ("label2_cc1", "target area 4 px < min area 5")
    ]
    a, _ = plan_case(ds, label, "a", components=True, max_targets=2, rng=np.random.default_rng(1))
    b, _ = plan_case(ds, label, "a", components=True, max_targets=2, rng=np.random.default_rng(1))
    assert len(a) == 2 and a == b
    targets = list(materialize(Image(np.zeros((20, 30))), label, a))
    assert [int(t.mask.sum()) for t in targets] == [s.area for s in a]
    assert targets[0].image is targets[1].image  # one image object: one set_image


def _folder_3d(parent: Path, task: str = "semantic") -> Path:
    root = parent / "vol"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    lab = np.zeros((6, 10, 12), np.uint8)
    lab[1:4, 2:5, 2:6] = 1
    lab[2, 5:8, 2:6] = 1  # slice 2 holds the most voxels of label 1 (24)
    lab[4, 1:3, 8:11] = 3
    spacing = (3.0, 0.5, 0.7)
    save(Image(np.zeros(lab.shape, np.int16), spacing=spacing), root / "images" / "v1_0000.nii.gz")
    save(Image(np.ones(lab.shape, np.int16), spacing=spacing), root / "images" / "v1_0001.nii.gz")
    save(LabelMap(lab, spacing=spacing), root / "labels" / "v1.nii.gz")
    names = {"0": "bg", "1": "liver", "3": "spleen"}
    entry = {"name": "vol", "dims": 3, "task": task, "modality": "CT (test)", "label_names": names}
    manifest = {"datasets": [entry]}
    (parent / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_3d_targets_use_the_largest_slice_with_in_plane_spacing(tmp_path: Path) -> None:
    ds = discover(_folder_3d(tmp_path))
    assert ds.modality == "CT" and [c.image.name for c in ds.cases] == ["v1_0000.nii.gz"]
    image, label = load_pair(ds, ds.cases[0])
    assert image.modality == "CT" and image.array.max() == 0  # channel _0000 only
    specs, _ = plan_case(ds, label, "v1")
    assert [(s.target_id, s.label_name, s.slice_index, s.area) for s in specs] == [
        ("label1", "liver", 2, 24), ("label3", "spleen", 4, 6)
    ]  # fmt: skip
    t1, t3 = materialize(image, label, specs)
    assert t1.mask.shape == (10, 12) and int(t1.mask.sum()) == 24
    assert t1.spacing == pytest.approx((0.5, 0.7)) and t1.image.ndim == 2
    vol_specs, _ = plan_case(ds, label, "v1", volume=True)
    assert [(s.slice_index, s.area) for s in vol_specs] == [(None, 48), (None, 6)]
    assert t3.image is not t1.image and t3.spec.slice_index == 4
    assert next(materialize(image, label, vol_specs)).mask.shape == (6, 10, 12)


def test_manifest_marks_instances(tmp_path: Path) -> None:
    ds = discover(_folder_3d(tmp_path, task="instance"))
    assert ds.instances
    _, label = load_pair(ds, ds.cases[0])
    assert [s.target_id for s in plan_case(ds, label, "v1")[0]] == ["instance1", "instance3"]
    assert not discover(tmp_path / "vol", instances=False).instances
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["datasets"][0]["modality"] = "MR (brain) + tiny CT DICOM series"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert discover(tmp_path / "vol").modality == "MR"


def test_nnunet_layout(tmp_path: Path) -> None:
    root = tmp_path / "Dataset001_Toy"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    save(np.zeros((20, 30), np.uint8), root / "imagesTr" / "k1_0000.png")
    save(_label_2d(), root / "labelsTr" / "k1.png")
    meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": 1, "cyst": 2},
            "numTraining": 1, "file_ending": ".png"}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(meta))
    ds = discover(root)
    assert (ds.layout, ds.modality, ds.label_names) == ("nnunet", "CT", {1: "kidney", 2: "cyst"})
    assert [(c.case_id, c.image.name, c.label.name) for c in ds.cases] == [
        ("k1", "k1_0000.png", "k1.png")
    ]


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a dataset folder"):
        discover(tmp_path)
    with pytest.raises(InputError, match="no such dataset folder"):
        discover(tmp_path / "missing")


def test_shared_data_layouts(shared_data: Path) -> None:
    kvasir = discover(shared_data / "kvasir_seg_sample")
    assert not kvasir.instances and len(kvasir.cases) == 5
    assert discover(shared_data / "miccai15_nuclei").instances
    brats = discover(shared_data / "brats2015_deepmedic")
    assert brats.label_names[2] == "edema" and brats.cases[0].image.name.endswith("_0000.nii.gz")
    radiomics = discover(shared_data / "pyradiomics_data")
    assert radiomics.cases[0].image.name == "brain1.nii.gz"  # no channel suffix
