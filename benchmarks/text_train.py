"""Train medseg's text head (``medseg.models.text``) on cached LiteMedSAM embeddings.

    python benchmarks/text_data.py --out /work/cache/text          # embeddings, once
    python benchmarks/text_train.py --cache /work/cache/text --minutes 25 \
        --out src/medseg/assets/medseg_text.pt [--num-threads 2] [--seed 0] \
        [--splits train,heldout_case] [--init earlier.pt] [--boost totalseg_ref=3]

Examples are (image embedding, phrase) pairs from the ``train`` split of the cache (the
left-out datasets of ``benchmarks/text_data.py`` are never seen). Each step draws images with
weight 1/sqrt(images of their dataset) (times ``--boost`` for the named datasets) and, per
image, a target present in it (a two-sided vocabulary target: "kidney" = both kidneys; sides
are cut by rule at prediction) or, with probability ``--absent``, an absent one: a target
labelled in the image's dataset but with no pixel in this image, or a target whose datasets
show another body region / modality. The phrase is a random name or synonym of the target
(synonym sampling), embedded with MiniLM. Loss: present -> BCE + Dice of the mask (inside the
image, not the padding) + BCE of
the presence logit towards 1; absent -> BCE of the mask towards empty + presence towards 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("text_train")

# Body region per dataset (one home, shared with medseg bench text): an absent target is one
# of a region the image does not show.
from medseg.bench.text import DATASET_REGION as REGION  # noqa: E402
from medseg.bench.text import regions_overlap  # noqa: E402


def model_targets(vocab) -> list:
    """Vocabulary targets a text model segments (two-sided or intrinsic, not generic)."""
    return [t for t in vocab.targets.values() if not t.generic and t.model_target == t.id]


def target_values(target, meta: dict) -> list[int]:
    """Label values of ``meta``'s image whose union is ``target`` (empty: not labelled)."""
    names = target.labels.get(meta["dataset"], ())
    if meta["task"] == "instance":
        return [1] if names else []
    return [int(v) for v, n in meta["label_names"].items() if n in names]


def index_samples(samples: list[dict], labels: np.ndarray, targets: list) -> list[dict]:
    """Per sample: present targets (id -> values) and absent candidates."""
    regions = {t.id: {REGION[d] for d in t.datasets} for t in targets}
    out = []
    for meta in samples:
        lab = labels[meta["index"]]
        present, absent = {}, []
        for t in targets:
            vals = target_values(t, meta)
            if vals:
                if np.isin(lab, vals).sum() >= 4:
                    present[t.id] = vals
                else:
                    absent.append(t.id)
            elif not regions_overlap(REGION[meta["dataset"]], regions[t.id]):
                absent.append(t.id)
        out.append({"present": present, "absent": absent})
    return out


def phrase_table(targets: list, vocab) -> tuple[list[str], np.ndarray, dict[str, list[int]]]:
    """Every phrase of every vocabulary target (normalised), its MiniLM vectors, and per
    model target the rows of its own phrases."""
    from medseg.prompts.text import normalize_phrase
    from medseg.prompts.text_encoder import embed_phrases

    phrases = sorted({normalize_phrase(p) for t in vocab.targets.values()
                      for p in (t.name, *t.synonyms)} - {""})  # fmt: skip
    row = {p: i for i, p in enumerate(phrases)}
    vectors = embed_phrases(phrases)
    rows = {t.id: sorted({row[normalize_phrase(p)] for p in (t.name, *t.synonyms)} - {None})
            for t in targets}  # fmt: skip
    return phrases, vectors, rows


def parse_boost(text: str | None) -> dict[str, float]:
    """``"a=3,b=2"`` -> ``{"a": 3.0, "b": 2.0}`` (sampling-weight factors per dataset)."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if item.strip():
            name, _, factor = item.partition("=")
            out[name.strip()] = float(factor)
    return out


def loss_fn(low, presence, gt, valid, present):
    """Mask BCE (+ Dice where present) inside ``valid`` and presence BCE."""
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(low, gt, reduction="none")
    bce = (bce * valid).sum((1, 2)) / valid.sum((1, 2))
    p = torch.sigmoid(low) * valid
    dice = 1 - (2 * (p * gt).sum((1, 2)) + 1) / (p.sum((1, 2)) + gt.sum((1, 2)) + 1)
    pres = F.binary_cross_entropy_with_logits(presence, present, reduction="none")
    return (bce + dice * present + 0.5 * pres).mean()


def train(args: argparse.Namespace) -> dict:
    import torch

    from medseg.models.registry import create_model
    from medseg.models.text import TRAINED_PREFIXES, WEIGHTS_FORMAT, build_text_head
    from medseg.prompts.text import load_vocabulary

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(args.num_threads)
    cache = Path(args.cache)
    samples = [json.loads(line) for line in (cache / "samples.jsonl").read_text().splitlines()]
    emb = np.load(cache / "embeddings.npy", mmap_mode="r")
    labels = np.load(cache / "labels.npy")
    vocab = load_vocabulary()
    targets = model_targets(vocab)
    splits = set(args.splits.split(","))
    train_s = [s for s in samples if s["split"] in splits]
    index = index_samples(train_s, labels, targets)
    keep = [i for i, ix in enumerate(index) if ix["present"]]
    counts: dict[str, int] = {}
    for i in keep:
        counts[train_s[i]["dataset"]] = counts.get(train_s[i]["dataset"], 0) + 1
    boost = parse_boost(args.boost)
    w = np.array([boost.get(train_s[i]["dataset"], 1.0) / math.sqrt(counts[train_s[i]["dataset"]])
                  for i in keep])  # fmt: skip
    w /= w.sum()
    phrases, vectors, rows = phrase_table(targets, vocab)
    log.info("%d training images (%d datasets), %d targets, %d phrases",
             len(keep), len(counts), len(targets), len(phrases))  # fmt: skip
    lite = create_model("litemedsam", backend="torch")
    head = build_text_head(lite.net)
    if args.init:  # continue from earlier weights (fp16 trained parameters)
        prior = torch.load(args.init, map_location="cpu", weights_only=False)["state"]
        head.load_state_dict({k: v.float() for k, v in prior.items()}, strict=False)
        log.info("initialised from %s", args.init)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    pe = lite._dense_pe
    t0, step, hist = time.time(), 0, []
    while time.time() - t0 < args.minutes * 60:
        feats, texts, gts, valids, pres = [], [], [], [], []
        for i in rng.choice(keep, size=args.batch, p=w):
            meta, ix = train_s[i], index[i]
            absent = ix["absent"] and rng.random() < args.absent
            tid = rng.choice(ix["absent"] if absent else sorted(ix["present"]))
            lab = labels[meta["index"]]
            gt = np.zeros(lab.shape, np.float32) if absent else np.isin(lab, ix["present"][tid])
            valid = np.zeros(lab.shape, np.float32)
            valid[: meta["resized"][0], : meta["resized"][1]] = 1
            feats.append(np.asarray(emb[meta["index"]], np.float32))
            texts.append(vectors[rng.choice(rows[tid])])
            gts.append(gt.astype(np.float32))
            valids.append(valid)
            pres.append(0.0 if absent else 1.0)
        low, presence = head(torch.from_numpy(np.stack(feats)), pe,
                             torch.from_numpy(np.stack(texts)))  # fmt: skip
        loss = loss_fn(low, presence, torch.from_numpy(np.stack(gts)),
                       torch.from_numpy(np.stack(valids)), torch.tensor(pres))  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
        step += 1
        if step % 25 == 0:
            log.info("step %d loss %.4f (%.0f s)", step, np.mean(hist[-25:]), time.time() - t0)
    state = {k: v.detach().half() for k, v in head.state_dict().items()
             if k.startswith(TRAINED_PREFIXES)}  # fmt: skip
    info = {"steps": step, "batch": args.batch, "minutes": args.minutes, "lr": args.lr,
            "absent_p": args.absent, "seed": args.seed, "train_images": len(keep),
            "splits": sorted(splits), "init": args.init and Path(args.init).name,
            "boost": boost, "renders": sorted({s.get("render", 0) for s in train_s}),
            "train_datasets": sorted(counts), "final_loss": float(np.mean(hist[-50:])),
            "heldout_datasets": sorted({s["dataset"] for s in samples
                                        if s["split"] == "heldout"}),
            "vocabulary_version": vocab.version}  # fmt: skip
    doc = {"format": WEIGHTS_FORMAT, "version": 1, "state": state, "phrases": phrases,
           "vectors": torch.from_numpy(vectors).half(), "presence_threshold": 0.5,
           "info": info}  # fmt: skip
    torch.save(doc, args.out)
    log.info("saved %s (%d steps, loss %.4f)", args.out, step, info["final_loss"])
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default="/work/cache/text")
    ap.add_argument("--out", default="src/medseg/assets/medseg_text.pt")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--absent", type=float, default=0.3)
    ap.add_argument("--num-threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--splits",
        default="train",
        help="cache splits trained on, comma-separated (train, heldout_case)",
    )
    ap.add_argument("--init", help="weights file to continue training from")
    ap.add_argument("--boost", default=None, help="sampling-weight factors, e.g. totalseg_ref=3")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(ap.parse_args())


if __name__ == "__main__":
    main()
