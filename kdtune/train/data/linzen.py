"""Linzen, Dupoux & Goldberg (2016) subject-verb agreement data from files.

* ``linzen_simple``: the "simple" release, one item a line: ``VBZ`` or ``VBP``, a tab, the sentence
  prefix up to the verb. ``numpred.test.N`` holds test items with exactly N attractors (the count is
  taken from the file name); the distance to the subject is not in these files. Classification only.
* ``linzen_tsv``: the original ``agr_50_mostcommon_10K.tsv`` (a header line, 18 tab-separated columns),
  split 9% / 1% / 90% into train / val / test with a fixed seed, as in the paper; both objectives.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from kdtune.errors import DataError
from kdtune.train.data.dataset import DATASETS, DataSpec
from kdtune.train.data.text import VBZ_VBP, AgreementDataset, Item, plural_of, read_lines, singular_of

TSV_COLUMNS = [
    "sentence", "orig_sentence", "pos_sentence", "subj", "verb", "subj_pos", "has_rel", "has_nsubj", "verb_pos",
    "subj_index", "verb_index", "n_intervening", "last_intervening", "n_diff_intervening", "distance", "max_depth",
    "all_nouns", "nouns_up_to_verb",
]  # fmt: skip


def _folder(root: Path | None, folder: str, name: str) -> Path:
    if root is None:
        raise DataError(f"data set {name!r} needs a data folder: pass --data-dir (the folder holding {folder})")
    path = root / folder
    if not path.is_dir():
        raise DataError(f"{path}: no such folder (data set {name!r} reads {folder} under --data-dir)")
    return path


def parse_simple(path: Path, attractors: int = -1) -> list[Item]:
    """Items of one ``numpred.*`` file; a malformed line is a DataError naming the file and line."""
    items = []
    for i, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        label, tab, prefix = line.partition("\t")
        if not tab or label not in VBZ_VBP:
            raise DataError(f"{path}:{i}: expected 'VBZ' or 'VBP', a tab and the sentence prefix; got {line[:60]!r}")
        words = prefix.split()
        if not words:
            raise DataError(f"{path}:{i}: empty sentence prefix")
        items.append(Item([*words, label], len(words), VBZ_VBP[label], -1, attractors))
    return items


@DATASETS.register("linzen_simple")
class LinzenSimple(AgreementDataset):
    """``folder`` (under --data-dir) holds ``train_file`` and ``numpred.test.N`` (N = 0 … 5, those present).

    Without ``numpred.train`` (not redistributed here), set ``train_file: numpred.val``: validation is
    then held out of it (``data.val_size``). With ``val_file`` set, that file is the validation split.
    """

    needs_root = True

    def __init__(
        self,
        folder: str = "agreement/linzen_simple",
        train_file: str = "numpred.train",
        val_file: str = "",
        max_vocab: int = 10000,
        max_words: int = 100,
    ) -> None:
        super().__init__("classification", max_vocab, max_words)
        self.folder, self.train_file, self.val_file = folder, train_file, val_file

    def check(self, root: Path | None) -> None:
        path = _folder(root, self.folder, "linzen_simple")
        for name in (self.train_file, self.val_file):
            if name and not (path / name).is_file():
                raise DataError(
                    f"{path / name}: no such file (available: {', '.join(sorted(p.name for p in path.glob('numpred*')))})"
                )
        if not self._test_files(path):
            raise DataError(f"{path}: no numpred.test.N files (test items with N attractors)")

    @staticmethod
    def _test_files(path: Path) -> list[tuple[int, Path]]:
        found = [
            (int(m.group(1)), p) for p in path.glob("numpred.test.*") if (m := re.fullmatch(r"numpred\.test\.(\d+)", p.name))
        ]
        return sorted(found)

    def read(self, root: Path | None, spec: DataSpec) -> dict[str, list[Item]]:
        self.check(root)
        path = _folder(root, self.folder, "linzen_simple")
        parts = {"train": parse_simple(path / self.train_file)}
        if self.val_file:
            parts["val"] = parse_simple(path / self.val_file)
        parts["test"] = [it for n, p in self._test_files(path) for it in parse_simple(p, attractors=n)]
        return parts


def parse_tsv(path: Path) -> list[tuple[Item, list[str]]]:
    """Items of Linzen's original TSV with each sentence's POS tags; indices in it are 1-based.
    Verb forms are left empty here (see :func:`inflect`). Errors name the file and line."""
    lines = read_lines(path)
    if not lines or lines[0].split("\t") != TSV_COLUMNS:
        raise DataError(f"{path}:1: expected a header with the 18 columns {', '.join(TSV_COLUMNS)}")
    items = []
    for i, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(TSV_COLUMNS):
            raise DataError(f"{path}:{i}: expected {len(TSV_COLUMNS)} tab-separated columns, got {len(cols)}")
        row = dict(zip(TSV_COLUMNS, cols, strict=True))
        words = row["sentence"].split()
        try:
            verb_index, subj_index = int(row["verb_index"]) - 1, int(row["subj_index"]) - 1
            distance, attractors = int(row["distance"]), int(row["n_diff_intervening"])
        except ValueError:
            raise DataError(f"{path}:{i}: subj_index, verb_index, distance and n_diff_intervening must be integers") from None
        if row["verb_pos"] not in VBZ_VBP:
            raise DataError(f"{path}:{i}: verb_pos must be VBZ or VBP, got {row['verb_pos']!r}")
        if not 0 <= subj_index < verb_index < len(words):
            raise DataError(
                f"{path}:{i}: subj_index {subj_index + 1} and verb_index {verb_index + 1} do not fit a {len(words)}-word sentence"
            )
        items.append((Item(words, verb_index, VBZ_VBP[row["verb_pos"]], distance, attractors), row["pos_sentence"].split()))
    return items


def inflect(items: list[Item], tagged: list[tuple[list[str], list[str]]]) -> None:
    """Fill each item's singular and plural verb forms, as Linzen et al.'s ``gen_inflect_from_vocab``: a VBZ form and a
    VBP form pair up when both were seen with those tags (in ``tagged``, the training sentences) and one inflects into
    the other. Items without a known pair keep empty forms (a language model is then not scored on them)."""
    seen: dict[str, set[str]] = {"VBZ": set(), "VBP": set()}
    for words, tags in tagged:
        if len(words) == len(tags):
            for w, t in zip(words, tags, strict=True):
                if t in seen:
                    seen[t].add(w)
    for it in items:
        verb = it.words[it.verb_index]
        other = plural_of(verb) if it.number == 0 else singular_of(verb)
        if other != verb and other in seen["VBP" if it.number == 0 else "VBZ"]:
            it.singular, it.plural = (verb, other) if it.number == 0 else (other, verb)


@DATASETS.register("linzen_tsv")
class LinzenTSV(AgreementDataset):
    """``file`` (under --data-dir) in Linzen et al.'s 18-column format, split train / val / test by the
    ``split`` fractions (9/1/90 as in the paper), shuffled with ``data.split_seed``."""

    needs_root = True

    def __init__(
        self,
        file: str = "agreement/agr_50_mostcommon_10K.tsv",
        objective: str = "classification",
        max_vocab: int = 10000,
        max_words: int = 50,
        split: list = (0.09, 0.01, 0.9),  # type: ignore[assignment]
    ) -> None:
        super().__init__(objective, max_vocab, max_words)
        if len(split) != 3 or any(f < 0 for f in split) or abs(sum(split) - 1) > 1e-6:
            raise ValueError(f"split must be three fractions (train, val, test) summing to 1, got {list(split)}")
        self.file, self.split = file, tuple(split)

    def check(self, root: Path | None) -> None:
        if root is None:
            raise DataError(f"data set 'linzen_tsv' needs a data folder: pass --data-dir (the folder holding {self.file})")
        if not (root / self.file).is_file():
            raise DataError(f"{root / self.file}: no such file (Linzen et al.'s agr_50_mostcommon_10K.tsv)")

    def read(self, root: Path | None, spec: DataSpec) -> dict[str, list[Item]]:
        self.check(root)
        rows = parse_tsv(root / self.file)  # type: ignore[operator]
        perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(spec.split_seed)).tolist()
        n_train, n_val = round(self.split[0] * len(rows)), round(self.split[1] * len(rows))
        bounds = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}
        parts = {name: [rows[i][0] for i in sorted(ix)] for name, ix in bounds.items()}
        train_tagged = [(rows[i][0].words, rows[i][1]) for i in bounds["train"]]
        inflect([it for items in parts.values() for it in items], train_tagged)
        return parts
