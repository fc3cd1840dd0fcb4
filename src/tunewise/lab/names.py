"""Fictional names built from syllables, so no real-world knowledge can answer questions about them."""

from __future__ import annotations

import random

SYLLABLES: tuple[str, ...] = (
    "ba", "bel", "bra", "cor", "dal", "dri", "dun", "el", "fa", "fen", "gar", "gim", "hol", "ka",
    "kel", "lem", "lis", "lo", "mar", "mi", "mon", "nes", "nor", "ob", "pa", "pim", "qua", "ra",
    "rov", "sa", "sul", "tan", "tis", "tor", "ul", "ven", "vor", "wen", "yar", "zan", "zel", "tho",
)
COMPANY_SUFFIXES: tuple[str, ...] = ("Labs", "Works", "Group", "Systems", "Foods", "Motors", "Textiles", "Co")
PRODUCT_SUFFIXES: tuple[str, ...] = ("X2", "Pro", "Mini", "300", "Max", "Air", "One", "S")
PLACE_SUFFIXES: tuple[str, ...] = ("", "", "", " Falls", " Bay", " Hill", " Port")


class NameMaker:
    """Draws unique fictional names from a seeded random source; names in `reserved` are never produced."""

    def __init__(self, rng: random.Random, reserved: frozenset[str] = frozenset()) -> None:
        self._rng = rng
        self._reserved = reserved
        self._taken: set[str] = set()

    def _word(self, low: int, high: int) -> str:
        return "".join(self._rng.choice(SYLLABLES) for _ in range(self._rng.randint(low, high))).capitalize()

    def _unique(self, kind: str) -> str:
        while True:
            name = self._make(kind)
            if name not in self._taken and name not in self._reserved:
                self._taken.add(name)
                return name

    def _make(self, kind: str) -> str:
        if kind == "person":
            return f"{self._word(2, 2)} {self._word(2, 3)}"
        if kind == "company":
            return f"{self._word(2, 3)} {self._rng.choice(COMPANY_SUFFIXES)}"
        if kind == "product":
            return f"{self._word(2, 2)} {self._rng.choice(PRODUCT_SUFFIXES)}"
        return f"{self._word(2, 3)}{self._rng.choice(PLACE_SUFFIXES)}"

    def person(self) -> str:
        """A first and last name, e.g. 'Talo Venmar'."""
        return self._unique("person")

    def company(self) -> str:
        """A company name with a suffix, e.g. 'Brenvo Labs'."""
        return self._unique("company")

    def product(self) -> str:
        """A product name with a model tag, e.g. 'Zelka Pro'."""
        return self._unique("product")

    def place(self) -> str:
        """A town or region name, e.g. 'Quamar Bay'."""
        return self._unique("place")
