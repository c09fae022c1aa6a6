"""Build medseg's text-prompt vocabulary from every named target of the shared data.

    python benchmarks/build_text_vocabulary.py [--data ../shared/data] \
        [--out src/medseg/assets/text_vocabulary.json]

Reads ``manifest.json`` (dataset- and case-level ``label_names``) and writes one entry per
target: canonical name, synonyms and abbreviations, laterality, modalities, dims, datasets and,
per dataset, the raw label names whose union is the target (so "kidney" = kidney_left +
kidney_right, "whole tumor" = all four BraTS sub-regions, "lung" in TotalSegmentator CT = its
five lobes). Lateral targets ("left kidney") name their ``base`` (the two-sided target) and
the side rule. The synonym, abbreviation and AAL tables below are hand-written; rerunning on
the same manifest gives the same file (entries sorted, no timestamps).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
from pathlib import Path

log = logging.getLogger("build_text_vocabulary")

VERSION = 1

# Dataset -> (modality code, body region) per case kind; modality codes match
# ``medseg.io.Image.modality`` where medseg reads one (CT, MR, US, XR, MG, XA) and name the
# kind of picture otherwise.
DATASET_MODALITY = {
    "isbi2012_em": "EM", "miccai15_nuclei": "histopathology", "sammed2d_demo": "CT",
    "kvasir_seg_sample": "endoscopy", "ham10000_isic_sample": "dermoscopy",
    "cxr_lung_demo": "XR", "stardist_nuclei": "microscopy", "brats2015_deepmedic": "MR",
    "pyradiomics_data": "MR", "totalseg_ref": "CT", "mricron_atlas": "MR",
    "monai_testing_data": "MR", "busi_breast_us": "US", "hc18_fetal_head_us": "US",
    "tg3k_thyroid_us": "US", "ccaus_carotid_us": "US", "us_nerve_bp": "US",
    "drive_retina_vessels": "fundus", "chasedb1_retina_vessels": "fundus",
    "hrf_retina_vessels": "fundus", "jsrt_scr_cxr": "XR", "msd_spleen_ct_slices": "CT",
    "msd_lung_tumour_ct_slices": "CT", "sct_spinalcord_mr": "MR",
    "pansegdata_pancreas_t2_mr": "MR", "npc_nasopharynx_t2_mr": "MR",
    "dsb2018_nuclei": "microscopy", "glas_colon_glands": "histopathology",
    "isic2017_skin_lesion": "dermoscopy", "cvc_colondb_polyp": "endoscopy",
    "arcade_stenosis_xca": "XA", "cdd_cesm_mammo_lesion": "MG",
}  # fmt: skip
CASE_MODALITY = {("totalseg_ref", "example_mr_sm"): "MR"}

# Raw label name (normalised: lower case, "_" -> " ", parenthetical dropped) -> target id.
RENAME = {
    "lesion": "skin_lesion", "skin lesion": "skin_lesion", "nucleus": "nucleus",
    "right lung": "lung_right", "left lung": "lung_left", "right clavicle": "clavicula_right",
    "left clavicle": "clavicula_left", "lung": "lung", "heart": "heart",
    "benign breast tumor": "benign_breast_tumor", "malignant breast tumor":
    "malignant_breast_tumor", "breast lesion": "breast_lesion",
    "retinal blood vessel": "retinal_vessel", "roi": "roi",
    "spinal cord gray matter": "spinal_cord_gray_matter",
}  # fmt: skip
GENERIC = {"roi"}  # names a region without saying what it is: listed, never trained
SKIP = re.compile(r"^(background.*|label \d+)$")

# Targets made of other targets, per dataset: id -> {dataset: [raw label names]}.
COMPOSITES = {
    "whole_tumor": {"brats2015_deepmedic": ["necrosis", "edema", "non-enhancing tumor",
                                            "enhancing tumor"]},
    "tumor_core": {"brats2015_deepmedic": ["necrosis", "non-enhancing tumor",
                                           "enhancing tumor"]},
    "breast_lesion": {"busi_breast_us": ["benign breast tumor", "malignant breast tumor"]},
    "lung_left": {"totalseg_ref": ["lung_upper_lobe_left", "lung_lower_lobe_left"]},
    "lung_right": {"totalseg_ref": ["lung_upper_lobe_right", "lung_middle_lobe_right",
                                    "lung_lower_lobe_right"]},
    "heart": {"sammed2d_demo": ["heart_atrium_left", "heart_atrium_right", "heart_myocardium",
                                "heart_ventricle_left", "heart_ventricle_right"]},
}  # fmt: skip

# Names whose "left"/"right" is part of the anatomy, not the side of the body.
INTRINSIC = {"heart_atrium_left", "heart_atrium_right", "heart_ventricle_left",
             "heart_ventricle_right", "atrial_appendage_left"}  # fmt: skip

# Synonyms and abbreviations per target id (two-sided or intrinsic ids; a lateral target
# gets "left <synonym>" etc. from its base).
SYNONYMS = {
    "spleen": ["splenic", "lien"], "kidney": ["renal", "kidneys"],
    "liver": ["hepatic", "hepar"], "gallbladder": ["gall bladder", "gb", "cholecyst"],
    "stomach": ["gastric", "ventriculus"], "pancreas": ["pancreatic", "pancreas gland"],
    "adrenal_gland": ["adrenal", "suprarenal gland", "adrenals"],
    "lung": ["lungs", "pulmonary", "lung field"], "esophagus": ["oesophagus", "gullet"],
    "trachea": ["windpipe"], "thyroid_gland": ["thyroid"],
    "small_bowel": ["small intestine", "jejunum and ileum"],
    "colon": ["large bowel", "large intestine"], "urinary_bladder": ["bladder"],
    "prostate": ["prostate gland"], "kidney_cyst": ["renal cyst"],
    "vertebrae": ["vertebra", "spine", "vertebral column", "spinal column"],
    "intervertebral_discs": ["intervertebral disc", "disc", "discs"],
    "heart": ["cardiac", "heart shadow"], "aorta": ["aortic"],
    "pulmonary_vein": ["pulmonary veins"], "brachiocephalic_trunk": ["innominate artery"],
    "common_carotid_artery": ["carotid artery", "cca", "carotid"],
    "superior_vena_cava": ["svc"], "inferior_vena_cava": ["ivc"],
    "portal_vein_and_splenic_vein": ["portal vein", "splenic vein", "portal and splenic vein"],
    "iliac_vena": ["iliac vein"], "clavicula": ["clavicle", "collarbone", "collar bone"],
    "femur": ["thigh bone", "femoral bone"], "hip": ["hip bone", "pelvic bone"],
    "scapula": ["shoulder blade"], "humerus": ["upper arm bone"],
    "spinal_cord": ["cord", "medulla spinalis"],
    "autochthon": ["autochthonous back muscle", "erector spinae", "paraspinal muscle"],
    "iliopsoas": ["psoas", "iliopsoas muscle"], "skull": ["cranium"], "rib": ["ribs"],
    "sternum": ["breastbone"], "costal_cartilages": ["costal cartilage"],
    "brain": ["cerebrum", "whole brain"],
    "heart_atrium_left": ["left atrium", "la"], "heart_atrium_right": ["right atrium", "ra"],
    "heart_ventricle_left": ["left ventricle", "lv"],
    "heart_ventricle_right": ["right ventricle", "rv"],
    "heart_myocardium": ["myocardium", "heart muscle", "myo"],
    "atrial_appendage_left": ["left atrial appendage", "laa"],
    "lung_upper_lobe": ["upper lobe"], "lung_lower_lobe": ["lower lobe"],
    "lung_middle_lobe": ["middle lobe", "rml"],
    "membrane": ["cell membrane", "neuronal membrane", "membranes"],
    "nucleus": ["nuclei", "cell nucleus", "cell nuclei"],
    "polyp": ["colon polyp", "colorectal polyp", "polyps"],
    "skin_lesion": ["dermoscopic lesion", "mole", "nevus", "skin tumor"],
    "necrosis": ["necrotic tumor core", "ncr", "necrotic core"],
    "edema": ["peritumoral edema", "ed", "oedema"],
    "non_enhancing_tumor": ["net", "non enhancing tumor", "nonenhancing tumor"],
    "enhancing_tumor": ["et", "enhancing tumour"],
    "whole_tumor": ["wt", "brain tumor", "glioma", "whole tumour"],
    "tumor_core": ["tc"],
    "breast_lesion": ["breast tumor", "breast mass"],
    "benign_breast_tumor": ["benign breast lesion", "benign tumor"],
    "malignant_breast_tumor": ["malignant breast lesion", "malignant tumor", "breast cancer"],
    "fetal_head": ["foetal head", "fetal skull", "baby head"],
    "brachial_plexus_nerve": ["brachial plexus", "bp nerve", "brachial plexus nerves"],
    "retinal_vessel": ["retinal vessels", "retinal blood vessels", "fundus vessels"],
    "lung_tumor": ["lung tumour", "lung cancer", "lung nodule", "pulmonary nodule"],
    "spinal_cord_gray_matter": ["spinal gray matter", "cord gray matter"],
    "nasopharyngeal_carcinoma": ["npc", "nasopharyngeal cancer", "nasopharyngeal tumor"],
    "colon_gland": ["colon glands", "colonic gland", "intestinal gland"],
    "coronary_artery_stenosis": ["stenosis", "coronary stenosis"],
    "roi": ["region of interest"],
}  # fmt: skip

# AAL (116 regions): abbreviation parts -> words.
AAL_WORDS = {
    "Sup": "superior", "Mid": "middle", "Inf": "inferior", "Orb": "orbital part",
    "Oper": "opercular part", "Tri": "triangular part", "Med": "medial", "Medial": "medial",
    "Ant": "anterior", "Post": "posterior", "Supp": "supplementary", "Lobule": "lobule",
}  # fmt: skip
AAL_NAMES = {
    "Precentral": "precentral gyrus", "Postcentral": "postcentral gyrus",
    "Rolandic_Oper": "rolandic operculum", "Supp_Motor_Area": "supplementary motor area",
    "Olfactory": "olfactory cortex", "Rectus": "gyrus rectus", "Insula": "insula",
    "Cingulum_Ant": "anterior cingulate gyrus", "Cingulum_Mid": "middle cingulate gyrus",
    "Cingulum_Post": "posterior cingulate gyrus", "Hippocampus": "hippocampus",
    "ParaHippocampal": "parahippocampal gyrus", "Amygdala": "amygdala",
    "Calcarine": "calcarine cortex", "Cuneus": "cuneus", "Lingual": "lingual gyrus",
    "Fusiform": "fusiform gyrus", "SupraMarginal": "supramarginal gyrus",
    "Angular": "angular gyrus", "Precuneus": "precuneus",
    "Paracentral_Lobule": "paracentral lobule", "Caudate": "caudate nucleus",
    "Putamen": "putamen", "Pallidum": "globus pallidus", "Thalamus": "thalamus",
    "Heschl": "heschl gyrus", "Frontal_Sup_Medial": "medial superior frontal gyrus",
    "Frontal_Med_Orb": "medial orbital frontal gyrus",
    "Temporal_Pole_Sup": "superior temporal pole", "Temporal_Pole_Mid": "middle temporal pole",
}  # fmt: skip
LOBES = {"Frontal": "frontal gyrus", "Occipital": "occipital gyrus",
         "Temporal": "temporal gyrus", "Parietal": "parietal gyrus"}  # fmt: skip


def clean(raw: str) -> str:
    """Lower case, parenthetical dropped, ``_``/``-`` as spaces."""
    name = re.sub(r"\s*\(.*\)\s*", " ", raw).strip().lower()
    return re.sub(r"\s+", " ", name.replace("_", " ").replace("-", " ")).strip()


def aal_target(raw: str) -> tuple[str, str, list[str]]:
    """(target id, readable name, extra synonyms) of an AAL region such as ``Frontal_Sup_Orb_L``."""
    stem = re.sub(r"_[LR]$", "", raw)
    syn = [clean(stem)]
    if stem in AAL_NAMES:
        name = AAL_NAMES[stem]
    elif stem.startswith("Cerebelum_"):
        name = "cerebellum lobule " + stem.split("_", 1)[1].replace("_", " ").lower()
        syn.append(name.replace("lobule ", ""))
    elif stem.startswith("Vermis_"):
        name = "vermis lobule " + stem.split("_", 1)[1].replace("_", " ")
        syn.append(name.replace("lobule ", ""))
    else:
        parts = stem.split("_")
        words = [AAL_WORDS.get(p, p.lower()) for p in parts[1:]]
        part = [w for w in words if w.endswith("part")]
        rest = [w for w in words if not w.endswith("part")]
        name = " ".join([*rest, LOBES[parts[0]], *part])
    tid = re.sub(r"[^a-z0-9]+", "_", name).strip("_")
    return tid, name, syn


def split_side(tid: str) -> tuple[str, str | None]:
    """``kidney_left`` -> (``kidney``, ``left``); ``rib_left_9`` -> (``rib_9``, ``left``)."""
    if tid in INTRINSIC:
        return tid, None
    tokens = tid.split("_")
    for side in ("left", "right"):
        if side in tokens:
            return "_".join(t for t in tokens if t != side), side
    return tid, None


def readable(tid: str) -> str:
    """Display name of a target id: ``vertebrae_L1`` -> ``vertebra L1``."""
    m = re.fullmatch(r"vertebrae_([CTLS]\d+)", tid)
    if m:
        return f"vertebra {m.group(1)}"
    m = re.fullmatch(r"rib_(\d+)", tid)
    if m:
        return f"rib {m.group(1)}"
    return tid.replace("_", " ")


def extra_synonyms(tid: str) -> list[str]:
    """Rule-made synonyms: vertebra levels, rib numbers, SYNONYMS."""
    out = list(SYNONYMS.get(tid, []))
    m = re.fullmatch(r"vertebrae_([CTLS])(\d+)", tid)
    if m:
        region = {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[m.group(1)]
        level = m.group(1) + m.group(2)
        out += [level.lower(), f"{level.lower()} vertebra", f"{region} vertebra {m.group(2)}"]
    m = re.fullmatch(r"rib_(\d+)", tid)
    if m:
        out += [f"{m.group(1)} rib", f"rib number {m.group(1)}"]
    return out


def series_composites(ds: str, label_names: dict) -> list[tuple[str, dict]]:
    """All vertebrae / all ribs (per side and both) of a TotalSegmentator-style label set."""
    names = list(label_names.values())
    out = []
    for cid, pattern in (
        ("vertebrae", r"vertebrae_[CTLS]\d+"),
        ("rib_left", r"rib_left_\d+"),
        ("rib_right", r"rib_right_\d+"),
        ("rib", r"rib_(left|right)_\d+"),
    ):
        raws = [n for n in names if re.fullmatch(pattern, n)]
        if len(raws) > 1:
            out.append((cid, {ds: raws}))
    return out


def _add(targets: dict, tid: str, name: str, ds: str, raw: list[str], mod: str, dims: int) -> None:
    t = targets.setdefault(tid, {"id": tid, "name": name, "labels": {}, "modalities": set(),
                                 "dims": set(), "synonyms": set()})  # fmt: skip
    labels = t["labels"].setdefault(ds, [])
    labels.extend(r for r in raw if r not in labels)
    t["modalities"].add(mod)
    t["dims"].add(dims)


def collect(manifest: dict) -> tuple[dict, list[str]]:
    """Targets found in the manifest (before lateral/base expansion) and skipped names."""
    targets: dict = {}
    skipped: set[str] = set()
    for ds in manifest["datasets"]:
        name, dims = ds["name"], ds["dims"]
        if dims is None or ds["task"] == "none":
            continue
        kinds = [(ds.get("label_names") or {}, DATASET_MODALITY[name])]
        for case in ds["cases"]:
            if case.get("label_names"):
                kinds.append(
                    (
                        case["label_names"],
                        CASE_MODALITY.get((name, case["id"]), DATASET_MODALITY[name]),
                    )
                )
        for label_names, mod in kinds:
            for raw in label_names.values():
                key = clean(raw)
                if SKIP.match(key):
                    skipped.add(f"{name}: {raw}")
                    continue
                if name == "mricron_atlas":
                    tid, readable_name, syn = aal_target(raw)
                    side = {"L": "_left", "R": "_right"}.get(raw[-1]) if raw[-2] == "_" else None
                    tid = tid + (side or "")
                    _add(targets, tid, readable_name, name, [raw], mod, dims)
                    targets[tid]["synonyms"].update(syn)
                    continue
                tid = RENAME.get(key, re.sub(r"[^a-z0-9]+", "_", raw.strip()).strip("_"))
                if name == "totalseg_ref" or name == "sammed2d_demo":
                    tid = raw
                _add(targets, tid, readable(tid), name, [raw], mod, dims)
            for cid, parts in [*COMPOSITES.items(), *series_composites(name, label_names)]:
                for cds, raws in parts.items():
                    present = set(label_names.values())
                    if cds == name and present.issuperset(raws):
                        _add(targets, cid, readable(cid), name, raws, mod, dims)
    return targets, sorted(skipped)


def expand(targets: dict) -> list[dict]:
    """Add two-sided bases for lateral targets; synonyms; JSON-ready sorted entries."""
    out = dict(targets)
    for tid, t in targets.items():
        base, side = split_side(tid)
        if side is None:
            continue
        name = t["name"] if "mricron_atlas" in t["labels"] else readable(base)
        t["base"], t["laterality"] = base, side
        t["name"] = f"{side} {name}"
        b = out.setdefault(base, {"id": base, "name": name, "labels": {}, "modalities": set(),
                                  "dims": set(), "synonyms": set()})  # fmt: skip
        for ds, raws in t["labels"].items():
            labels = b["labels"].setdefault(ds, [])
            labels.extend(r for r in raws if r not in labels)
        b["modalities"] |= t["modalities"]
        b["dims"] |= t["dims"]
        b["synonyms"] |= t["synonyms"]
    entries = []
    for tid, t in sorted(out.items()):
        side = t.get("laterality")
        base = t.get("base")
        own = {f"{side} {s}" for s in t["synonyms"]} if side else set(t["synonyms"])
        syn = own | {clean(tid), clean(t["name"])}
        for s in extra_synonyms(base or tid) + sorted(out.get(base, {}).get("synonyms", [])):
            syn.add(f"{side} {s}" if side else s)
        syn |= set(extra_synonyms(tid))
        syn.discard(t["name"])
        entries.append({
            "id": tid, "name": t["name"], "synonyms": sorted(syn), "laterality": side,
            "base": base, "side_rule": "midline" if side else None,
            "generic": tid in GENERIC, "modalities": sorted(t["modalities"]),
            "dims": sorted(t["dims"]), "datasets": sorted(t["labels"]),
            "labels": {k: v for k, v in sorted(t["labels"].items())},
        })  # fmt: skip
    return entries


def build(data: Path) -> dict:
    """The vocabulary document for the manifest under ``data``."""
    raw = (data / "manifest.json").read_bytes()
    manifest = json.loads(raw)
    targets, skipped = collect(manifest)
    entries = expand(targets)
    return {
        "format": "medseg-text-vocabulary",
        "version": VERSION,
        "source": {"manifest_sha256": hashlib.sha256(raw).hexdigest(),
                   "builder": "benchmarks/build_text_vocabulary.py"},
        "skipped_label_names": skipped,
        "targets": entries,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("src/medseg/assets/text_vocabulary.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    doc = build(args.data)
    args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    log.info("%d targets -> %s", len(doc["targets"]), args.out)


if __name__ == "__main__":
    main()
