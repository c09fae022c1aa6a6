"""Cache LiteMedSAM embeddings + model-frame label maps of the TRAIN group for click training.

    nice -n 10 python benchmarks/foundation_clicks_cache.py --data ../shared/data \
        --out /work/cache/clicks [--num-threads 2] [--limit N] [--count]

Reuses :func:`text_data.build_cache` (same normalisation as ``Predictor.set_image``, embeddings
``(256, 64, 64)`` float16 in ``embeddings.npy``, labels ``(256, 256)`` uint8 in ``labels.npy``,
one ``samples.jsonl`` line per sample) restricted to ``LEAVE_OUT_GROUPS["train"]``
(:mod:`medseg.training.foundation.split`), with fewer slices per volume (:data:`STEPS`) so the
cache builds in about 20 minutes on two CPU threads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from text_data import build_cache, iter_samples

from medseg.training.foundation.split import LEAVE_OUT_GROUPS

# Volume -> (axial step, coronal/sagittal step): fewer slices than the text cache.
STEPS = {"brats2015_deepmedic": (16, 40), "mricron_atlas": (8, 16), "totalseg_ref": (3, 12),
         "sct_spinalcord_mr": (4, 12)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("/work/cache/clicks"))
    ap.add_argument("--num-threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--count", action="store_true", help="only count the samples")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    select = {"datasets": LEAVE_OUT_GROUPS["train"], "volume_steps": STEPS}
    if args.count:
        c = Counter(m["dataset"] for m, _, _ in iter_samples(args.data, **select))
        for k, v in sorted(c.items()):
            logging.info("%s: %d", k, v)
        logging.info("total %d", sum(c.values()))
        return
    build_cache(args.data, args.out, args.num_threads, args.limit, **select)


if __name__ == "__main__":
    main()
