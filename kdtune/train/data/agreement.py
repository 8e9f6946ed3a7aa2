"""The embedded agreement data: English-like sentences with a subject, intervening prepositional
phrases and relative clauses holding attractor nouns (nouns of the other number), then the verb.

Fixed vocabulary and seed, no files. Training sentences rarely contain attractors (each intervening
noun is of the other number with probability ``p_attractor``); the test set has the same number of
sentences for every attractor count 0 … ``max_attractors``, as in Linzen et al.'s evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from kdtune.train.data.dataset import DATASETS, DataSpec
from kdtune.train.data.text import AgreementDataset, Item

NOUNS = [
    ("author", "authors"), ("key", "keys"), ("cabinet", "cabinets"), ("dog", "dogs"), ("farmer", "farmers"),
    ("teacher", "teachers"), ("painting", "paintings"), ("student", "students"), ("pilot", "pilots"),
    ("doctor", "doctors"), ("table", "tables"), ("book", "books"), ("window", "windows"), ("car", "cars"),
    ("bird", "birds"), ("girl", "girls"), ("boy", "boys"), ("manager", "managers"), ("report", "reports"),
    ("song", "songs"), ("senator", "senators"), ("lawyer", "lawyers"), ("house", "houses"), ("friend", "friends"),
]  # fmt: skip
MAIN_VERBS = [("is", "are"), ("has", "have"), ("seems", "seem"), ("remains", "remain"), ("looks", "look"), ("was", "were")]
RC_VERBS = [("likes", "like"), ("sees", "see"), ("knows", "know"), ("admires", "admire"), ("follows", "follow"),
            ("meets", "meet"), ("helps", "help"), ("watches", "watch"), ("hates", "hate"), ("visits", "visit")]  # fmt: skip
PREPS = ["of", "near", "behind", "with", "from", "beside", "above", "under", "for", "without"]
DETS = (["a", "this", "one", "every"], ["some", "these", "many", "two"])
ADJS = ["old", "young", "big", "small", "red", "new", "tall", "quiet", "happy", "famous", "strange", "green"]
ENDINGS = [["here", "."], ["."], ["today", "."], ["again", "."]]
CONJUNCTIONS = ["after", "when", "because", "while", "although", "since", "before"]
PAST_VERBS = ["left", "arrived", "smiled", "returned", "waited", "laughed", "spoke", "slept"]
SAY_VERBS = [("says", "say"), ("thinks", "think"), ("believes", "believe"), ("knows", "know")]
ADVERBIALS = [["yesterday", ","], ["in", "the", "end", ","], ["of", "course", ","], ["at", "night", ","]]


T = TypeVar("T")


class _Generator:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.rng.integers(len(seq)))]

    def noun_phrase(self, number: int) -> tuple[list[str], int]:
        """Words of a noun phrase and the offset of its head noun."""
        det = "the" if self.rng.random() < 0.7 else self.pick(DETS[number])
        words = [det] + ([self.pick(ADJS)] if self.rng.random() < 0.3 else [])
        words.append(self.pick(NOUNS)[number])
        return words, len(words) - 1

    def modifier(self, head_number: int, number: int) -> list[str]:
        """A PP or a relative clause whose noun has ``number`` (attaching to a noun of ``head_number``)."""
        kind = int(self.rng.integers(3))
        np_words, _ = self.noun_phrase(number)
        if kind == 0:  # prepositional phrase: "near the cabinets"
            return [self.pick(PREPS), *np_words]
        verb = self.pick(RC_VERBS)
        if kind == 1:  # subject relative: "that likes the cabinets" (its verb agrees with the head)
            return ["that", verb[head_number], *np_words]
        return ["that", *np_words, verb[number]]  # object relative: "that the cabinets like"

    def preamble(self) -> list[str]:
        """Material before the subject: an adverb, an adverbial clause ("after the dogs left ,") or a
        complement clause whose own verb agrees with its own noun ("the doctors say that")."""
        kind = int(self.rng.integers(3))
        if kind == 0:
            return list(self.pick(ADVERBIALS))
        np_words, _ = self.noun_phrase(int(self.rng.integers(2)))
        if kind == 1:
            return [self.pick(CONJUNCTIONS), *np_words, self.pick(PAST_VERBS), ","]
        number = 1 if np_words[-1] in {n[1] for n in NOUNS} else 0
        return [*np_words, self.pick(SAY_VERBS)[number], "that"]

    def sentence(self, attractor_flags: list[bool], p_preamble: float) -> Item:
        number = int(self.rng.integers(2))
        start = self.preamble() if self.rng.random() < p_preamble else []
        words, head = self.noun_phrase(number)
        words, head = start + words, head + len(start)
        for attract in attractor_flags:
            words += self.modifier(number, 1 - number if attract else number)
        verb = self.pick(MAIN_VERBS)
        verb_index = len(words)
        words += [verb[number]] + ([self.pick(ADJS)] if self.rng.random() < 0.5 else []) + self.pick(ENDINGS)
        return Item(words, verb_index, number, verb_index - head, sum(attractor_flags), verb[0], verb[1])


@DATASETS.register("agreement_synthetic")
class SyntheticAgreement(AgreementDataset):
    """Generated subject-verb agreement; ``train_size`` sentences with ``min_modifiers`` to ``max_modifiers`` modifiers
    between subject and verb (the distance; each an attractor with probability ``p_attractor``), ``test_per_group`` test
    sentences for each attractor count 0 … ``max_attractors``, none of whose prefixes occurs in training; a sentence
    starts with a preamble (so the subject is not simply the first noun) with probability ``p_preamble``. Deterministic
    given ``seed``."""

    def __init__(
        self,
        objective: str = "classification",
        max_vocab: int = 0,
        max_words: int = 100,
        train_size: int = 4000,
        test_per_group: int = 400,
        max_modifiers: int = 4,
        min_modifiers: int = 0,
        max_attractors: int = 4,
        p_attractor: float = 0.25,
        p_preamble: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__(objective, max_vocab, max_words)
        if not 0 <= p_attractor <= 1 or max_attractors > max_modifiers or min(train_size, test_per_group) < 1:
            raise ValueError("need 0 <= p_attractor <= 1, max_attractors <= max_modifiers and positive sizes")
        if not 0 <= min_modifiers <= max_modifiers:
            raise ValueError(f"need 0 <= min_modifiers <= max_modifiers, got {min_modifiers} and {max_modifiers}")
        self.train_size, self.test_per_group = train_size, test_per_group
        self.max_modifiers, self.max_attractors, self.p_attractor, self.seed = max_modifiers, max_attractors, p_attractor, seed
        self.p_preamble, self.min_modifiers = p_preamble, min_modifiers

    def read(self, root: Path | None, spec: DataSpec | None = None) -> dict[str, list[Item]]:
        gen = _Generator(np.random.default_rng(self.seed))
        train = []
        for _ in range(self.train_size):
            m = int(gen.rng.integers(self.min_modifiers, self.max_modifiers + 1))
            train.append(gen.sentence([bool(gen.rng.random() < self.p_attractor) for _ in range(m)], self.p_preamble))
        seen = {item.prefix for item in train}
        test = [self._unseen_test_item(gen, a, seen) for a in range(self.max_attractors + 1) for _ in range(self.test_per_group)]
        return {"train": train, "test": test}

    def _unseen_test_item(self, gen: _Generator, attractors: int, seen: set[tuple[str, ...]]) -> Item:
        """A test sentence with exactly ``attractors`` attractors whose prefix is not in ``seen`` (the
        training prefixes and the test prefixes drawn so far); adds its prefix to ``seen``."""
        for _ in range(1000):
            others = gen.rng.integers(max(self.min_modifiers - attractors, 0), self.max_modifiers - attractors + 1)
            flags = [True] * attractors + [False] * int(others)
            gen.rng.shuffle(flags)
            item = gen.sentence(flags, self.p_preamble)
            if item.prefix not in seen:
                seen.add(item.prefix)
                return item
        raise ValueError(f"cannot draw {self.test_per_group} test sentences with {attractors} attractors unseen in training")
