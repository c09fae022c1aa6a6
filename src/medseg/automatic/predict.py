"""Folder prediction with a trained ``medseg auto`` model: every case of a file or an
``imagesTs``-style folder (``CASE_0000.nii.gz, CASE_0001.nii.gz`` = one case with two channels)
to ``OUT/<case><ending>``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.automatic.model import AutoModel
from medseg.errors import InputError
from medseg.io.naming import DATASET_ENDINGS, split_channel, split_ending

__all__ = ["find_cases", "predict_folder"]

if TYPE_CHECKING:
    from medseg.automatic.adapt import AdaptedModel

log = logging.getLogger(__name__)

_ENDINGS = DATASET_ENDINGS


def _split_name(path: Path) -> tuple[str, str] | None:
    return split_ending(path.name, DATASET_ENDINGS)


def find_cases(path: str | Path) -> dict[str, list[Path]]:
    """Case id -> channel files, for one file or an ``imagesTs``-style folder.

    ``CASE_0000.nii.gz, CASE_0001.nii.gz`` form one case ``CASE``; a file without a
    ``_CCCC`` suffix is a one-file case named by its stem. For a single ``CASE_0000`` file,
    its sibling channel files are picked up too.
    """
    path = Path(path).expanduser()
    if path.is_file():
        parts = _split_name(path)
        if parts is None:
            raise InputError(f"{path}: unsupported file type (use one of {_ENDINGS})")
        case_channel = split_channel(parts[0])
        if case_channel is None:
            return {parts[0]: [path]}
        case = case_channel[0]
        files = sorted(path.parent.glob(f"{glob_escape(case)}_[0-9][0-9][0-9][0-9]{parts[1]}"))
        return {case: files}
    if not path.is_dir():
        raise InputError(f"{path}: no such file or folder")
    groups: dict[str, dict[int, Path]] = {}
    for f in sorted(path.iterdir()):
        parts = _split_name(f)
        if parts is None or f.name.startswith("."):
            continue
        case, channel = split_channel(parts[0]) or (parts[0], 0)
        groups.setdefault(case, {})[channel] = f
    if not groups:
        raise InputError(f"{path}: no images with a supported ending {_ENDINGS}")
    out = {}
    for case, chans in groups.items():
        if sorted(chans) != list(range(len(chans))):
            raise InputError(f"{path}: case {case} has channel files {sorted(chans)}, not 0..N-1")
        out[case] = [chans[i] for i in sorted(chans)]
    return out


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a literal file name part."""
    import glob

    return glob.escape(text)


def predict_folder(
    model: AutoModel | AdaptedModel,
    input_path: str | Path,
    out_dir: str | Path,
    *,
    num_parts: int = 1,
    part_id: int = 0,
) -> list[Path]:
    """Segment every case of a file or folder into ``out_dir/<case><ending>``.

    ``num_parts``/``part_id`` shard the sorted case list (``cases[part_id::num_parts]``) so
    several processes or machines can share one folder. An
    :class:`~medseg.automatic.adapt.AdaptedModel` adapts a copy of the networks to each case
    first (``medseg auto predict --adapt``).
    """
    from tqdm import tqdm

    from medseg.data.nnunet import assemble_case
    from medseg.io import load, save

    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise InputError(f"need 0 <= part_id < num_parts, got part {part_id} of {num_parts}")
    cases = find_cases(input_path)
    todo = sorted(cases)[part_id::num_parts]
    out_dir = Path(out_dir)
    written = []
    for case in tqdm(todo, desc="predict", unit="case", disable=len(todo) < 2):
        files = cases[case]
        image, _ = assemble_case(
            [load(f) for f in files], None, expected_channels=model.plan.in_channels, case_id=case
        )
        ending = _split_name(files[0])[1]
        target = out_dir / f"{case}{ending}"
        save(model.predict(image), target)
        written.append(target)
        log.info("%s -> %s", case, target)
    return written
