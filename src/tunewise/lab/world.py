"""The lab world's truth: entities, their facts, and which facts the lab model learns in pretraining."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from tunewise.lab.names import NameMaker

GENERATOR_VERSION = "5"

# Question phrasing per relation; the tasks and the pretraining corpus share it.
QUESTIONS: dict[str, str] = {
    "born_in": "Where was {s} born?",
    "birth_year": "In what year was {s} born?",
    "works_at": "Which company does {s} work for?",
    "founded_year": "In what year was {s} founded?",
    "headquarters": "Where is {s} headquartered?",
    "made_by": "Which company makes the {s}?",
    "price": "How much does the {s} cost?",
}

# How many entities of each kind; "known" ones are taught to the model, the rest live only in documents.
COUNTS = {"places": 40, "companies": 50, "products": 100, "people": 160}
KNOWN = {"companies": 20, "products": 40, "people": 60}


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, value) triple and whether the lab model knows it closed-book."""

    subject: str
    relation: str
    value: str
    known: bool

    @property
    def question(self) -> str:
        """The question whose answer is `value`."""
        return QUESTIONS[self.relation].format(s=self.subject)


@dataclass
class Entity:
    """A named thing with attributes (relation -> value) and a documents id."""

    kind: str
    name: str
    attrs: dict[str, str]
    known: bool = False
    doc_id: str = ""


@dataclass
class World:
    """All entities of one seeded world, in generation order."""

    seed: int
    places: list[Entity] = field(default_factory=list)
    companies: list[Entity] = field(default_factory=list)
    products: list[Entity] = field(default_factory=list)
    people: list[Entity] = field(default_factory=list)

    def subjects(self) -> list[Entity]:
        """Entities that facts are asked about (places are only values)."""
        return self.people + self.companies + self.products

    def facts(self) -> list[Fact]:
        """Every fact of the world, in a stable order."""
        return list(entity_facts(self.subjects()))

    def names(self) -> list[str]:
        """Every entity name, so other generators can avoid them."""
        return [e.name for e in self.places + self.subjects()]


def entity_facts(entities: Iterable[Entity]) -> Iterable[Fact]:
    """The facts stated by the given entities."""
    for e in entities:
        for relation, value in e.attrs.items():
            yield Fact(e.name, relation, value, e.known)


YEARS = (1820, 2015)
BIRTH_YEARS = (1930, 2005)
PRICE_TENS = (2, 99)


def price(rng: random.Random) -> str:
    """A price in the world's currency."""
    return f"{rng.randint(*PRICE_TENS) * 10} crowns"


def numbers() -> list[str]:
    """Every year and price amount the world can state, so the lab tokenizer can give each its own token."""
    years = range(min(YEARS[0], BIRTH_YEARS[0]), max(YEARS[1], BIRTH_YEARS[1]) + 1)
    return [str(y) for y in years] + [str(t * 10) for t in range(PRICE_TENS[0], PRICE_TENS[1] + 1)]


def make_entities(rng: random.Random, names: NameMaker, counts: dict[str, int]) -> World:
    """Entities with attributes drawn from `rng`; places and companies are the values of later kinds."""
    world = World(seed=0)
    world.places = [Entity("place", names.place(), {}) for _ in range(counts["places"])]
    place_names = [p.name for p in world.places]
    for _ in range(counts["companies"]):
        attrs = {"founded_year": str(rng.randint(*YEARS)), "headquarters": rng.choice(place_names)}
        world.companies.append(Entity("company", names.company(), attrs))
    company_names = [c.name for c in world.companies]
    for _ in range(counts["products"]):
        attrs = {"made_by": rng.choice(company_names), "price": price(rng)}
        world.products.append(Entity("product", names.product(), attrs))
    for _ in range(counts["people"]):
        attrs = {
            "born_in": rng.choice(place_names),
            "birth_year": str(rng.randint(*BIRTH_YEARS)),
            "works_at": rng.choice(company_names),
        }
        world.people.append(Entity("person", names.person(), attrs))
    return world


def generate_world(seed: int) -> World:
    """The world for `seed`: same seed, same entities, same known/unknown split."""
    rng = random.Random(f"tunewise-lab-world-{seed}")
    world = make_entities(rng, NameMaker(rng), COUNTS)
    world.seed = seed
    for kind, n_known in KNOWN.items():
        group: list[Entity] = getattr(world, kind)
        for i in rng.sample(range(len(group)), n_known):
            group[i].known = True
    return world
