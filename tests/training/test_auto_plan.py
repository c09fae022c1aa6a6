"""Planning decisions on synthetic fingerprints (no images needed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medseg.automatic.plan import PlanBudget, load_plan, save_plan
from medseg.automatic.topology import estimate_cost, pool_and_conv
from medseg.errors import InputError
from medseg.training.fingerprint import CaseFingerprint, ChannelStats, Fingerprint
from medseg.training.planning import plan_experiment, target_spacing

STATS = ChannelStats(
    mean=50.0,
    std=10.0,
    median=48.0,
    min=-1000.0,
    max=900.0,
    percentile_00_5=-100.0,
    percentile_99_5=300.0,
)


def fingerprint(dims, spacings, shapes, channels=("MR",), crop=None) -> Fingerprint:
    cases = tuple(
        CaseFingerprint(f"c{i}", tuple(sh), tuple(sp), tuple(crop or sh), {0: 900, 1: 100})
        for i, (sp, sh) in enumerate(zip(spacings, shapes, strict=True))
    )
    return Fingerprint(
        dims, tuple(channels), (0, 1), {0: "background", 1: "fg"}, cases, (STATS,) * len(channels)
    )


def test_target_spacing_isotropic_is_median() -> None:
    sp = np.array([[1.0, 0.8, 0.8], [1.2, 0.7, 0.7], [1.4, 0.9, 0.9]])
    sh = np.full((3, 3), 100)
    assert target_spacing(sp, sh) == (1.2, 0.8, 0.8)


def test_target_spacing_anisotropic_uses_10th_percentile() -> None:
    # z spacing 4..6 mm vs 0.8 mm in-plane, 30 slices vs 256 pixels: nnU-Net's rule applies
    zs = [4.0, 5.0, 5.0, 6.0, 6.0]
    sp = np.array([[z, 0.8, 0.8] for z in zs])
    sh = np.array([[30, 256, 256]] * 5)
    out = target_spacing(sp, sh)
    assert out[1:] == (0.8, 0.8)
    assert out[0] == pytest.approx(float(np.percentile(zs, 10)))  # 4.4, not the median 5
    # enough slices: the median is kept even though the spacing is anisotropic
    sh_many = np.array([[300, 256, 256]] * 5)
    assert target_spacing(sp, sh_many)[0] == 5.0


def test_pool_and_conv_isotropic() -> None:
    kernels, strides, patch = pool_and_conv((1.0, 1.0, 1.0), (64, 64, 64), max_stages=6)
    assert strides == [[1, 1, 1]] + [[2, 2, 2]] * 4
    assert kernels == [[3, 3, 3]] * 5
    assert patch == (64, 64, 64)


def test_pool_and_conv_anisotropic_hand_computed() -> None:
    kernels, strides, patch = pool_and_conv((3.0, 1.0, 1.0), (32, 128, 128), max_stages=6)
    # z is 3x coarser: no pooling and 1-wide kernels along z until in-plane catches up
    assert strides == [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    assert kernels == [[1, 3, 3]] + [[3, 3, 3]] * 5
    assert patch == (32, 128, 128)


def test_pool_and_conv_pads_patch_to_divisible() -> None:
    _, strides, patch = pool_and_conv((1.0, 1.0), (100, 37), max_stages=7)
    factor = np.prod(np.array(strides), axis=0)
    assert tuple(factor) == (16, 8)  # 100->50->25->13->7 and 37->19->10->5
    assert patch == (112, 40)


def test_estimate_cost_scales_with_patch() -> None:
    k, s, _ = pool_and_conv((1.0, 1.0), (64, 64), max_stages=4)
    f1, m1 = estimate_cost((64, 64), k, s, [8, 16, 32, 64], 1, 2)
    f2, m2 = estimate_cost((128, 128), k, s, [8, 16, 32, 64], 1, 2)
    assert f2 == pytest.approx(4 * f1, rel=0.01) and m2 == pytest.approx(4 * m1, rel=0.01)
    assert f1 > 0 and m1 > 0


def test_2d_dataset_gets_2d_plan_within_budget() -> None:
    fp = fingerprint(2, [(1.0, 1.0)] * 5, [(512, 512)] * 5)
    budget = PlanBudget(time_budget_s=300, flops_per_second=2e10, min_iterations=500)
    plan = plan_experiment(fp, budget)
    assert plan.configuration == "2d" and plan.spatial_dims == 2 and plan.transpose == (0, 1)
    flops, mem = estimate_cost(
        plan.patch_size,
        [list(k) for k in plan.kernel_sizes],
        [list(s) for s in plan.strides],
        list(plan.filters),
        1,
        2,
    )
    assert plan.batch_size * flops <= budget.flops_per_second * 300 / 500 * 1.0001
    assert plan.batch_size * mem <= budget.memory_bytes
    assert plan.estimated_iterations >= 500
    factor = np.prod(np.array(plan.strides), axis=0)
    assert all(p % f == 0 for p, f in zip(plan.patch_size, factor, strict=True))
    bigger = plan_experiment(
        fp, PlanBudget(time_budget_s=3000, flops_per_second=2e10, min_iterations=500)
    )
    assert (
        np.prod(bigger.patch_size) * bigger.filters[0] >= np.prod(plan.patch_size) * plan.filters[0]
    )


def test_isotropic_3d_gets_3d_plan() -> None:
    fp = fingerprint(3, [(1.0, 1.0, 1.0)] * 4, [(96, 96, 96)] * 4)
    plan = plan_experiment(fp, PlanBudget(time_budget_s=1800, flops_per_second=5e10))
    assert plan.configuration == "3d" and plan.spatial_dims == 3
    assert plan.target_spacing == (1.0, 1.0, 1.0) and not plan.anisotropic
    assert all(p <= 96 for p in plan.patch_size)
    assert plan.batch_size >= 2 and plan.deep_supervision_heads >= 1


def test_tiny_budget_prefers_2d_slices_over_a_tiny_3d_patch() -> None:
    fp = fingerprint(3, [(1.0, 1.0, 1.0)] * 4, [(155, 240, 240)] * 4)
    tiny = PlanBudget(time_budget_s=150, flops_per_second=1e10)
    forced = plan_experiment(fp, replace(tiny, configuration="3d"))
    assert forced.configuration == "3d" and max(forced.patch_size) < 64
    plan = plan_experiment(fp, tiny)
    assert plan.configuration == "2d" and plan.sample_patch_size[0] == 1
    assert min(plan.patch_size) > 2 * max(forced.patch_size)  # much more in-plane context
    assert "3D patch; 2D slices see more" in plan.notes[0]


def test_anisotropic_3d_gets_2d_slices_and_transpose() -> None:
    # array order (Z, Y, X) = (256, 256, 20) with spacing (0.7, 0.7, 5): the coarse axis is last
    fp = fingerprint(3, [(0.7, 0.7, 5.0)] * 4, [(256, 256, 20)] * 4)
    plan = plan_experiment(fp, PlanBudget(time_budget_s=600))
    assert plan.transpose == (2, 0, 1)
    assert plan.anisotropic and plan.configuration == "2d"
    assert plan.target_spacing == (None, 0.7, 0.7)
    assert plan.sample_patch_size == (1, *plan.patch_size)
    forced = plan_experiment(fp, PlanBudget(time_budget_s=600, configuration="3d"))
    assert forced.configuration == "3d" and forced.kernel_sizes[0][0] == 1


def test_normalisation_choices() -> None:
    ct = plan_experiment(
        fingerprint(2, [(1.0, 1.0)] * 3, [(64, 64)] * 3, channels=("CT",)), PlanBudget()
    )
    n = ct.normalization[0]
    assert (n.scheme, n.mean, n.std, n.lower, n.upper) == ("ct", 50.0, 10.0, -100.0, 300.0)
    mr = plan_experiment(
        fingerprint(2, [(1.0, 1.0)] * 3, [(64, 64)] * 3, channels=("T2", "rgb_to_0_1")),
        PlanBudget(),
    )
    assert [x.scheme for x in mr.normalization] == ["zscore", "rgb_to_0_1"]
    assert not mr.use_nonzero_mask
    cropped = fingerprint(3, [(1.0, 1.0, 1.0)] * 3, [(64, 64, 64)] * 3, crop=(32, 32, 32))
    assert plan_experiment(cropped, PlanBudget()).use_nonzero_mask  # cropping removed 7/8


def test_plan_json_roundtrip(tmp_path: Path) -> None:
    plan = plan_experiment(fingerprint(3, [(0.7, 0.7, 5.0)] * 3, [(64, 64, 12)] * 3), PlanBudget())
    path = save_plan(plan, tmp_path / "plans.json")
    assert load_plan(path) == plan


@pytest.mark.parametrize(
    "kwargs",
    [{"time_budget_s": 0}, {"memory_bytes": -1}, {"min_iterations": 0}, {"configuration": "4d"}],
)
def test_bad_budget_raises(kwargs: dict) -> None:
    with pytest.raises(InputError):
        PlanBudget(**kwargs)


def test_3d_configuration_for_2d_data_raises() -> None:
    fp = fingerprint(2, [(1.0, 1.0)] * 2, [(32, 32)] * 2)
    with pytest.raises(InputError, match="3d configuration was requested for a 2D dataset"):
        plan_experiment(fp, PlanBudget(configuration="3d"))


def test_load_plan_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no plans\.json"):
        load_plan(tmp_path / "plans.json")
    (tmp_path / "plans.json").write_text('{"version": 1}')
    with pytest.raises(InputError, match="not a valid medseg plan"):
        load_plan(tmp_path / "plans.json")
