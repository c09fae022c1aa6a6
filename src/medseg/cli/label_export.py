"""``medseg auto export-labels DATASTORE OUT``: the labels saved in ``medseg serve`` as an
nnU-Net raw training set (the annotate-then-retrain loop; see ``docs/auto.md``).

Reads the label store (:mod:`medseg.server.labelstore`, latest version per image) and
writes the dataset with :func:`medseg.training.corrections.write_corrections_dataset`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medseg.errors import InputError

__all__ = ["add_export_labels_parser", "export_labels", "read_corrections", "parse_names"]


def parse_names(items: list[str] | None) -> dict[int, str] | None:
    """``["1=liver", "2=kidney"]`` -> ``{1: "liver", 2: "kidney"}`` (None stays None)."""
    if items is None:
        return None
    out: dict[int, str] = {}
    for item in items:
        value, sep, name = item.partition("=")
        if not sep or not value.strip().isdigit() or not name.strip():
            raise InputError(f"--names: expected VALUE=NAME (e.g. 1=liver), got {item!r}")
        if int(value) in out:
            raise InputError(f"--names: value {int(value)} given twice")
        out[int(value)] = name.strip()
    return out


def add_export_labels_parser(sub: Any) -> None:
    """Register ``export-labels`` on the ``medseg auto`` sub-parsers."""
    p = sub.add_parser(
        "export-labels",
        help="labels saved in medseg serve -> nnU-Net training set (latest version per image)",
    )
    p.add_argument("datastore", type=Path, help="the folder medseg serve was started on")
    p.add_argument("out", type=Path, help="nnU-Net raw dataset folder to write (new or empty)")
    p.add_argument(
        "--names", nargs="+", metavar="VALUE=NAME",
        help="label names of the dataset, e.g. 1=liver 2=kidney (default: the names saved "
        "with the labels; needed when images name a value differently)",
    )  # fmt: skip
    p.add_argument("--channel-names", nargs="+", help="e.g. CT (default: guessed)")
    p.add_argument(
        "--link", action="store_true",
        help="symlink the images instead of copying them (when already in the label format)",
    )  # fmt: skip


def read_corrections(datastore: Path) -> tuple[list[Any], list[str]]:
    """``(cases, skipped)``: a :class:`~medseg.training.corrections.CorrectedCase` per image
    of ``datastore`` with a saved label (its latest version), and the names of the images
    without one. The store is only read (no sweep of crashed saves)."""
    from medseg.server.datastore import Datastore
    from medseg.server.labelstore import LabelStore
    from medseg.training.corrections import CorrectedCase, case_id_for

    store = Datastore(datastore, max_loaded=1)
    labels = LabelStore(store, sweep=False)
    cases, skipped = [], []
    for entry in store.scan():
        if not labels.versions(entry):
            skipped.append(entry.name)
            continue
        image = store.load(entry.id)
        info, _ = labels.read(entry, "latest", image)  # checks the label's shape
        rel = entry.rel if entry.series_uid is None else f"{entry.rel}_{entry.series_uid[-8:]}"
        cases.append(
            CorrectedCase(
                case_id=case_id_for(rel),
                source=entry.name,
                num_channels=image.num_channels,
                modality=image.modality,
                image_path=None if entry.is_dicom else entry.path,
                load_image=lambda image_id=entry.id: store.load(image_id),
                label_path=labels.folder(entry) / info.file,
                label_names={lab.value: lab.name for lab in info.labels if lab.value},
                version=info.version,
                created=info.created,
            )
        )
        store.forget(entry.id)
    return cases, skipped


def export_labels(args: argparse.Namespace) -> int:
    from medseg.training.corrections import write_corrections_dataset

    root, out = args.datastore.resolve(), Path(args.out).resolve()
    if out == root or out.is_relative_to(root):
        raise InputError(f"{args.out}: inside the datastore {args.datastore}; export elsewhere "
                         "(its images would be listed as the store's)")  # fmt: skip
    cases, skipped = read_corrections(args.datastore)
    record = write_corrections_dataset(
        cases, args.out, names=parse_names(args.names), channel_names=args.channel_names,
        skipped=skipped, link=args.link, dataset_name=args.datastore.resolve().name,
    )  # fmt: skip
    print(f"wrote {args.out}: {len(record['cases'])} labelled images, labels {record['labels']}")
    if skipped:
        shown = ", ".join(skipped[:20]) + (f", ... ({len(skipped)} in all)" if len(skipped) > 20
                                           else "")  # fmt: skip
        print(f"skipped {len(skipped)} image(s) without a saved label: {shown}")
    return 0
