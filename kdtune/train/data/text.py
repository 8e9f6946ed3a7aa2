"""Token data: a vocabulary built from the training split only, and agreement items → padded tensors.

Every agreement source (synthetic, Linzen's simple files, Linzen's TSV) yields :class:`Item` lists;
:class:`AgreementDataset` turns them into a :class:`~kdtune.train.data.base.DataBundle` for either objective:

* ``classification``: the prefix up to the verb → the verb's number (0 singular / VBZ, 1 plural / VBP);
* ``language_model``: ``<bos> sentence <eos>``; eval splits keep the verb position and the token ids of
  the singular and plural verb forms, so agreement is scored by comparing their probabilities.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from kdtune.errors import DataError
from kdtune.train.data.base import DataBundle, DataInfo, Split
from kdtune.train.data.dataset import Dataset, DataSpec, EvalSetSpec, train_val_indices

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
OBJECTIVES = ("classification", "language_model")
PLACEHOLDER_VOCAB = 64  # for validating model parameters before any data is read


class Vocabulary:
    """Word ↔ id; ``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3, then words by frequency."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int = 0, min_count: int = 1) -> Vocabulary:
        """From training sentences only: the most frequent words (ties by first appearance)."""
        counts = Counter(w for s in sentences for w in s)
        ranked = [w for w, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c >= min_count]
        return cls(ranked[: max_size - len(SPECIALS)] if max_size else ranked)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, words: Sequence[str]) -> list[int]:
        """Ids of ``words``; unknown words map to ``<unk>``."""
        unk = self.index[UNK]
        return [self.index.get(w, unk) for w in words]


@dataclass
class Item:
    """One agreement example. ``words`` is the whole sentence; the verb is ``words[verb_index]``."""

    words: list[str]
    verb_index: int
    number: int  # 0 singular (VBZ), 1 plural (VBP)
    distance: int = -1  # subject → verb, in words; -1 unknown
    attractors: int = -1  # intervening nouns of the other number; -1 unknown
    singular: str = ""  # the two verb forms (language modelling only)
    plural: str = ""

    @property
    def prefix(self) -> tuple[str, ...]:
        """The words before the verb: what a classifier reads."""
        return tuple(self.words[: self.verb_index])


VBZ_VBP = {"VBZ": 0, "VBP": 1}
IRREGULAR = {"is": "are", "has": "have", "does": "do", "was": "were"}


def plural_of(verb: str) -> str:
    """The plural (VBP) form of a singular (VBZ) verb: is → are, has → have, tries → try, runs → run."""
    if verb in IRREGULAR:
        return IRREGULAR[verb]
    if verb.endswith("ies") and len(verb) > 4:
        return verb[:-3] + "y"
    if verb.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        return verb[:-2]
    return verb[:-1] if verb.endswith("s") else verb


def singular_of(verb: str) -> str:
    """The singular (VBZ) form of a plural (VBP) verb: are → is, try → tries, run → runs."""
    inverse = {v: k for k, v in IRREGULAR.items()}
    if verb in inverse:
        return inverse[verb]
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    if verb.endswith(("ss", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    return verb + "s"


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(r) for r in rows), default=1)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):  # runs once when the data set is built, not in training
        tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return tokens, torch.tensor([len(r) for r in rows], dtype=torch.long)


class AgreementDataset(Dataset):
    """Base of the agreement sources. Subclasses implement :meth:`read` (items per split).

    ``objective`` picks the task; the vocabulary comes from the training split (``max_vocab`` words at
    most, 0 for all); sentences longer than ``max_words`` (counting the verb) are dropped.
    """

    kind = "tokens"
    default_eval_sets: ClassVar[dict[str, EvalSetSpec]] = {"test": EvalSetSpec("test")}

    def __init__(self, objective: str = "classification", max_vocab: int = 10000, max_words: int = 100) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if not (max_vocab == 0 or max_vocab > len(SPECIALS)) or max_words < 2:
            raise ValueError(f"max_vocab must be 0 (all words) or > {len(SPECIALS)} (the special tokens), and max_words >= 2")
        self.objective, self.max_vocab, self.max_words = objective, max_vocab, max_words

    def describe(self) -> DataInfo:
        return self._info(self.max_words + 2, PLACEHOLDER_VOCAB)

    def _info(self, width: int, vocab_size: int) -> DataInfo:
        classes = vocab_size if self.objective == "language_model" else 2
        return DataInfo("tokens", (width,), classes, (("vocab_size", vocab_size), ("pad_id", 0)), self.objective)

    def read(self, root: Path | None, spec: DataSpec) -> dict[str, list[Item]]:
        """Items of ``train`` and of every eval set (and ``val`` if the source has its own)."""
        raise NotImplementedError

    def build(self, spec: DataSpec, root: Path | None) -> DataBundle:
        parts = {
            k: [it for it in v if len(it.words) <= self.max_words and it.verb_index >= 1]
            for k, v in self.read(root, spec).items()
        }
        if "val" not in parts:
            tr, va = train_val_indices(len(parts["train"]), spec)
            parts["val"] = [parts["train"][i] for i in va.tolist()]
            parts["train"] = [parts["train"][i] for i in tr.tolist()]
        lm = self.objective == "language_model"
        vocab = Vocabulary.build((it.words if lm else it.prefix for it in parts["train"]), self.max_vocab)
        splits = {name: self.encode(items, vocab, name) for name, items in parts.items()}
        missing = [e.name for e in spec.eval_sets if e.name not in splits and e.source != "train"]
        if missing:
            raise DataError(f"{type(self).__name__}: no eval set {', '.join(missing)}; available: {', '.join(splits)}")
        info = self._info(max(int(s.x["lengths"].max()) for s in splits.values()), len(vocab))  # type: ignore[index]
        evals = {"val": splits["val"]}
        for e in spec.eval_sets:  # an eval set of the training split: its sentences scored as every eval set's are
            evals[e.name] = self.encode(parts["train"], vocab, e.name) if e.source == "train" else splits[e.name]
        return DataBundle(info, splits["train"], splits["val"], evals)

    def encode(self, items: list[Item], vocab: Vocabulary, name: str) -> Split:
        """Items of split ``name`` → padded token tensors (eval rows sorted by length: slices pad little)."""
        lm, training = self.objective == "language_model", name == "train"
        if lm and not training:  # scoring needs two distinct verb forms, both in the vocabulary
            items = [it for it in items if it.singular != it.plural and it.singular in vocab and it.plural in vocab]
        if not training:
            items = sorted(items, key=lambda it: len(it.words) if lm else it.verb_index)
        if not items:
            why = " (a language model needs both verb forms in the training vocabulary)" if lm and not training else ""
            raise DataError(f"{type(self).__name__}: split {name!r} has no usable examples{why}")
        if lm:
            rows = [[vocab.index[BOS], *vocab.encode(it.words), vocab.index[EOS]] for it in items]
        else:
            rows = [vocab.encode(it.prefix) for it in items]
        tokens, lengths = _pad(rows)
        meta = {
            "distance": torch.tensor([it.distance for it in items]),
            "attractors": torch.tensor([it.attractors for it in items]),
        }
        if lm:
            meta["verb_index"] = torch.tensor([it.verb_index + 1 for it in items])  # +1: <bos>
            meta["singular"] = torch.tensor(vocab.encode([it.singular or UNK for it in items]))
            meta["plural"] = torch.tensor(vocab.encode([it.plural or UNK for it in items]))
        y = torch.tensor([it.number for it in items], dtype=torch.long)
        return Split({"tokens": tokens, "lengths": lengths}, y, meta)


def read_lines(path: Path) -> list[str]:
    """The lines of a text file; DataError naming the file if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
