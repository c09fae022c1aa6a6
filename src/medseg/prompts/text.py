"""Text prompts: the target vocabulary and a rule-based phrase parser.

The vocabulary (``medseg/assets/text_vocabulary.json``, built by
``benchmarks/build_text_vocabulary.py`` from every named target of the shared data) lists
each target's canonical name, synonyms and abbreviations, laterality, modalities and the
datasets that have it. :func:`parse_target` maps a phrase to one target by rule:

1. normalisation: lower case, punctuation and filler words (``segment the ...``) dropped,
   British spellings (tumour, oedema, oesophagus, foetal, grey) made American, ordinals
   (``9th``) as numbers, a plural ``s`` dropped; phrases are compared as sets of words, so
   ``kidney left`` = ``left kidney``;
2. a phrase equal to a name or synonym is that target (``left atrium`` is the heart chamber,
   not a side);
3. otherwise laterality words (left/right/l/r/lt/rt, bilateral/both) are taken out and the
   rest is looked up; ``left`` + ``kidney`` is ``left kidney``; ``bilateral kidney`` is
   ``kidney`` (both sides);
4. an unknown phrase raises ``PromptError`` listing the nearest known names (sentence-encoder
   similarity when the encoder loads, string similarity otherwise); empty text raises too;
5. with the image's modality known (CT, MR, US, XR, MG, XA), a target that exists in none
   of the vocabulary's images of that modality raises ``PromptError``.

Sentence encoders rate "left kidney" and "right kidney" as near-identical, which is why sides
are parsed by rule and applied by the ``side_rule`` (``midline``: the part of the two-sided
target on that side of the body; see :mod:`medseg.inference.text`).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from medseg.errors import PromptError

__all__ = [
    "Target",
    "TextQuery",
    "Vocabulary",
    "load_vocabulary",
    "normalize_phrase",
    "parse_target",
    "list_targets",
    "nearest_targets",
    "modality_code",
]

log = logging.getLogger(__name__)

VOCABULARY_ASSET = "text_vocabulary.json"
FILLER = frozenset({"the", "a", "an", "and", "of", "segment", "segmentation", "find", "show",
                    "me", "please", "mask", "outline", "all", "delineate", "contour", "label",
                    "structure"})  # fmt: skip
LEFT = frozenset({"left", "l", "lt", "sinister"})
RIGHT = frozenset({"right", "r", "rt", "dexter"})
BOTH = frozenset({"bilateral", "both", "bilat"})
SPELLING = (("tumour", "tumor"), ("oedema", "edema"), ("oesophag", "esophag"), ("foetal", "fetal"),
            ("grey", "gray"), ("haem", "hem"), ("centre", "center"))  # fmt: skip
PLURAL = {"nuclei": "nucleus", "vertebra": "vertebrae", "vessels": "vessel", "ribs": "rib"}
# Image modality (medseg.io.Image.modality, DICOM codes) -> vocabulary modality code; a
# modality not listed (RGB, unknown, ...) is not checked.
MODALITY_CODES = {"CT": "CT", "MR": "MR", "MRI": "MR", "US": "US", "XR": "XR", "CR": "XR",
                  "DX": "XR", "MG": "MG", "XA": "XA"}  # fmt: skip


@dataclass(frozen=True)
class Target:
    """One vocabulary entry (see ``text_vocabulary.json``).

    Attributes:
        id: stable key, e.g. ``"kidney_left"``; name: display name, ``"left kidney"``.
        synonyms: other names and abbreviations.
        laterality: ``"left"``, ``"right"`` or None; base: the two-sided target's id.
        side_rule: ``"midline"`` when the side is the part of ``base`` on that side of the
            body; None for one-sided or intrinsically named targets (``heart atrium left``).
        generic: names a region without saying what (``roi``): listed, never segmented.
        modalities, dims, datasets: where the target exists in the shared data.
        labels: dataset -> raw label names whose union is the target.
    """

    id: str
    name: str
    synonyms: tuple[str, ...]
    laterality: str | None
    base: str | None
    side_rule: str | None
    generic: bool
    modalities: tuple[str, ...]
    dims: tuple[int, ...]
    datasets: tuple[str, ...]
    labels: dict[str, tuple[str, ...]]

    @property
    def model_target(self) -> str:
        """The id a text model segments: the two-sided base for a ``midline`` side."""
        return self.base if self.side_rule == "midline" and self.base else self.id

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists instead of tuples)."""
        return {"id": self.id, "name": self.name, "synonyms": list(self.synonyms),
                "laterality": self.laterality, "base": self.base,
                "side_rule": self.side_rule, "generic": self.generic,
                "modalities": list(self.modalities), "dims": list(self.dims),
                "datasets": list(self.datasets),
                "labels": {k: list(v) for k, v in self.labels.items()}}  # fmt: skip


@dataclass(frozen=True)
class TextQuery:
    """A parsed phrase: ``target`` (the vocabulary entry), ``matched`` (the normalised name or
    synonym it matched) and ``side`` (``"left"``/``"right"`` to cut ``model_target`` at the
    midline, else None)."""

    text: str
    target: Target
    matched: str

    @property
    def side(self) -> str | None:
        return self.target.laterality if self.target.side_rule == "midline" else None

    @property
    def model_target(self) -> str:
        return self.target.model_target


def _singular(token: str) -> str:
    if token in PLURAL:
        return PLURAL[token]
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is", "as")):
        return token[:-1]
    return token


def normalize_phrase(text: str) -> str:
    """The normalised form of a phrase (rule 1 of the module docstring), words kept in order:
    ``"Segment the LEFT Kidneys!"`` -> ``"left kidney"``."""
    s = str(text).lower()
    for british, american in SPELLING:
        s = s.replace(british, american)
    s = re.sub(r"[_\-/,;:.!?()\[\]'\"]+", " ", s)
    s = re.sub(r"\b(\d+)(st|nd|rd|th)\b", r"\1", s)
    tokens = [_singular(t) for t in s.split() if t not in FILLER]
    return " ".join(tokens)


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(sorted(normalize_phrase(phrase).split()))


class Vocabulary:
    """The targets of a vocabulary document, indexed by normalised name and synonym."""

    def __init__(self, doc: dict[str, Any]) -> None:
        if doc.get("format") != "medseg-text-vocabulary":
            raise PromptError("not a medseg text vocabulary (format != medseg-text-vocabulary)")
        self.version = int(doc.get("version", 0))
        self.targets: dict[str, Target] = {}
        self.index: dict[tuple[str, ...], list[str]] = {}
        for t in doc["targets"]:
            target = Target(
                id=t["id"], name=t["name"], synonyms=tuple(t["synonyms"]),
                laterality=t["laterality"], base=t["base"], side_rule=t["side_rule"],
                generic=bool(t["generic"]), modalities=tuple(t["modalities"]),
                dims=tuple(t["dims"]), datasets=tuple(t["datasets"]),
                labels={k: tuple(v) for k, v in t["labels"].items()},
            )  # fmt: skip
            self.targets[target.id] = target
            for phrase in (target.name, target.id, *target.synonyms):
                ids = self.index.setdefault(_key(phrase), [])
                if target.id not in ids:
                    ids.append(target.id)
        self._sides = {(t.base, t.laterality): t.id for t in self.targets.values() if t.base}

    def lateral(self, base: str, side: str) -> Target | None:
        """The ``side`` (left/right) target of two-sided target ``base``, if listed."""
        tid = self._sides.get((base, side))
        return None if tid is None else self.targets[tid]

    def names(self) -> list[str]:
        """Every canonical name, sorted."""
        return sorted(t.name for t in self.targets.values())

    def phrases(self) -> list[str]:
        """Every name and synonym (normalised), sorted and unique."""
        out = {normalize_phrase(p) for t in self.targets.values() for p in (t.name, *t.synonyms)}
        return sorted(out)

    def lookup(self, phrase: str) -> list[Target]:
        """Targets whose name or a synonym equals ``phrase`` (as a set of normalised words)."""
        return [self.targets[i] for i in self.index.get(_key(phrase), [])]


@lru_cache(maxsize=4)
def _load(path: str | None) -> Vocabulary:
    if path is None:
        text = resources.files("medseg").joinpath("assets", VOCABULARY_ASSET).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return Vocabulary(json.loads(text))


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """The bundled vocabulary (or the one at ``path``), loaded once."""
    return _load(None if path is None else str(path))


def list_targets(
    modality: str | None = None, *, vocabulary: Vocabulary | None = None
) -> list[Target]:
    """Every target, sorted by name; with ``modality`` (an image modality such as ``"CT"``)
    only those that exist in images of that modality. For ``medseg segment --list-targets``."""
    vocab = vocabulary or load_vocabulary()
    code = modality_code(modality)
    out = [t for t in vocab.targets.values() if code is None or code in t.modalities]
    return sorted(out, key=lambda t: t.name)


def modality_code(modality: str | None) -> str | None:
    """The vocabulary's code for an image modality, or None when it is not checked."""
    return None if modality is None else MODALITY_CODES.get(str(modality).upper())


def _string_nearest(phrase: str, vocab: Vocabulary, k: int) -> list[str]:
    norm = normalize_phrase(phrase)
    scored: dict[str, float] = {}
    for t in vocab.targets.values():
        for p in (t.name, *t.synonyms):
            r = difflib.SequenceMatcher(None, norm, normalize_phrase(p)).ratio()
            scored[t.name] = max(scored.get(t.name, 0.0), r)
    return sorted(scored, key=lambda n: (-scored[n], n))[:k]


def _encoder_nearest(phrase: str, vocab: Vocabulary, k: int) -> list[str]:
    import numpy as np

    from medseg.prompts.text_encoder import embed_phrases

    names = vocab.names()
    emb = _name_embeddings(tuple(names))
    q = embed_phrases([normalize_phrase(phrase) or phrase])[0]
    order = np.argsort(-(emb @ q), kind="stable")
    return [names[i] for i in order[:k]]


@lru_cache(maxsize=2)
def _name_embeddings(names: tuple[str, ...]) -> Any:
    from medseg.prompts.text_encoder import embed_phrases

    return embed_phrases(list(names))


def nearest_targets(phrase: str, k: int = 5, *, method: str = "auto",
                    vocabulary: Vocabulary | None = None) -> list[str]:  # fmt: skip
    """The ``k`` known names nearest to ``phrase``: ``method="encoder"`` (MiniLM cosine),
    ``"string"`` (difflib ratio) or ``"auto"`` (encoder, string similarity if it fails)."""
    vocab = vocabulary or load_vocabulary()
    if method not in ("auto", "encoder", "string"):
        raise PromptError(f"unknown method {method!r}: auto, encoder or string")
    if method != "string":
        try:
            near = _encoder_nearest(phrase, vocab, k)
            strings = [n for n in _string_nearest(phrase, vocab, 2) if n not in near]
            return (strings + near)[:k] if strings else near
        except Exception as exc:  # no encoder: fall back to string similarity
            if method == "encoder":
                raise
            log.info("sentence encoder unavailable (%s): string similarity", exc)
    return _string_nearest(phrase, vocab, k)


def _side_of(tokens: list[str]) -> tuple[str | None, list[str]]:
    sides = {"left" for t in tokens if t in LEFT} | {"right" for t in tokens if t in RIGHT}
    if any(t in BOTH for t in tokens) or len(sides) == 2:
        sides = {"both"}
    rest = [t for t in tokens if t not in LEFT | RIGHT | BOTH]
    return (sides.pop() if sides else None), rest


def _candidates(text: str, vocab: Vocabulary) -> tuple[list[Target], str]:
    norm = normalize_phrase(text)
    found = vocab.lookup(norm)
    if found:
        return found, norm
    side, rest = _side_of(norm.split())
    if side is None or not rest:
        return [], norm
    bases = vocab.lookup(" ".join(rest))
    if side == "both":
        return [vocab.targets[b.model_target] for b in bases], " ".join(rest)
    out = []
    for b in bases:
        lateral = vocab.lateral(b.model_target, side)
        if lateral is None:
            raise PromptError(f"{b.name!r} has no {side} side in the vocabulary; say {b.name!r}")
        out.append(lateral)
    return out, " ".join(rest)


def parse_target(
    text: str,
    *,
    modality: str | None = None,
    vocabulary: Vocabulary | None = None,
    suggest: str = "auto",
) -> TextQuery:
    """The vocabulary target ``text`` names (rules in the module docstring).

    ``modality``: the image's modality; a target with no images of it raises. ``suggest``:
    how nearest names are found for an unknown phrase (:func:`nearest_targets` method).
    Raises ``PromptError`` for empty, unknown, ambiguous, generic or wrong-modality phrases.
    """
    vocab = vocabulary or load_vocabulary()
    if text is None or not str(text).strip() or not normalize_phrase(text):
        raise PromptError(
            "empty text prompt: name a target, e.g. text='left kidney' "
            "(medseg.prompts.text.list_targets() lists them)"
        )
    found, matched = _candidates(str(text), vocab)
    code = modality_code(modality)
    if len(found) > 1 and code is not None:
        found = [t for t in found if code in t.modalities] or found
    if not found:
        near = nearest_targets(str(text), 5, method=suggest, vocabulary=vocab)
        raise PromptError(f"unknown target {text!r}; nearest known targets: {', '.join(near)}")
    if len(found) > 1:
        names = ", ".join(repr(t.name) for t in found)
        raise PromptError(f"{text!r} is ambiguous: it names {names}; use one of these names")
    target = found[0]
    if target.generic:
        raise PromptError(f"{target.name!r} does not say what to segment; name the structure")
    if code is not None and code not in target.modalities:
        raise PromptError(
            f"target {target.name!r} exists in {', '.join(target.modalities)} images, not in "
            f"this {code} image (list_targets({code!r}) gives the {code} targets)"
        )
    return TextQuery(text=str(text), target=target, matched=matched)
