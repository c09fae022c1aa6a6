"""The fixed leave-datasets-out split of ``../shared/data`` for the foundation click model.

:data:`LEAVE_OUT_GROUPS` has two groups of the 2D (and sliced 3D) datasets, each mixing
modalities. ``"train"`` is the only data ``litemedsam-clicks``'s prompt encoder and mask
decoder were fine-tuned on; ``"left_out"`` is never trained on by any medseg model and is
the evaluation set (it holds the eight sets of ``docs/benchmarks.md``, "2D, datasets no
model trained on", so the numbers compare to that table):

=========  ==================================================================================
group      datasets (modality)
=========  ==================================================================================
train      isbi2012_em (EM), miccai15_nuclei (H&E), sammed2d_demo (CT), kvasir_seg_sample
           (endoscopy), ham10000_isic_sample + isic2017_skin_lesion (dermoscopy),
           cxr_lung_demo (chest X-ray), stardist_nuclei + dsb2018_nuclei (microscopy),
           brats2015_deepmedic (brain MR, sliced), totalseg_ref (CT/MR, sliced),
           mricron_atlas (brain MR parcels, sliced), sct_spinalcord_mr (spine MR, sliced),
           ccaus_carotid_us + us_nerve_bp (ultrasound), chasedb1 + hrf retina vessels
           (fundus), msd_spleen_ct_slices + msd_lung_tumour_ct_slices (CT),
           pansegdata_pancreas_t2_mr (MR), arcade_stenosis_xca (X-ray angiography),
           cdd_cesm_mammo_lesion (mammography)
left_out   busi_breast_us, hc18_fetal_head_us, tg3k_thyroid_us (ultrasound), jsrt_scr_cxr
           (chest X-ray), glas_colon_glands (H&E), cvc_colondb_polyp (endoscopy),
           drive_retina_vessels (fundus), npc_nasopharynx_t2_mr (MR)
=========  ==================================================================================

``medseg-interactive``'s bundled weights (``medseg.training.interactive.split``) were trained
on the first twelve datasets of the manifest (the ones present on 2026-12-02, minus its own
held-out cases), so none of ``"left_out"`` either. LiteMedSAM's own pre-training (MedSAM's
public collection) may include some of these sources; that cannot be excluded.
"""

from __future__ import annotations

__all__ = ["LEAVE_OUT_GROUPS", "group_of"]

LEAVE_OUT_GROUPS: dict[str, tuple[str, ...]] = {
    "train": (
        "isbi2012_em", "miccai15_nuclei", "sammed2d_demo", "kvasir_seg_sample",
        "ham10000_isic_sample", "cxr_lung_demo", "stardist_nuclei", "brats2015_deepmedic",
        "totalseg_ref", "mricron_atlas", "sct_spinalcord_mr", "ccaus_carotid_us", "us_nerve_bp",
        "chasedb1_retina_vessels", "hrf_retina_vessels", "msd_spleen_ct_slices",
        "msd_lung_tumour_ct_slices", "pansegdata_pancreas_t2_mr", "dsb2018_nuclei",
        "isic2017_skin_lesion", "arcade_stenosis_xca", "cdd_cesm_mammo_lesion",
    ),
    "left_out": (
        "busi_breast_us", "hc18_fetal_head_us", "jsrt_scr_cxr", "glas_colon_glands",
        "cvc_colondb_polyp", "tg3k_thyroid_us", "drive_retina_vessels", "npc_nasopharynx_t2_mr",
    ),
}  # fmt: skip


def group_of(dataset: str) -> str | None:
    """The group (``"train"`` / ``"left_out"``) of a dataset name, None when in neither."""
    for group, names in LEAVE_OUT_GROUPS.items():
        if dataset in names:
            return group
    return None
