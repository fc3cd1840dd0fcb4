"""Renders entities as short markdown, html and txt documents; the world's docs and the corpus use the same code."""

from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass

from tunewise.lab.world import Entity, Fact, World, entity_facts

EXTENSIONS: tuple[str, ...] = ("md", "html", "txt")

SENTENCES: dict[str, tuple[str, ...]] = {
    "born_in": ("{s} was born in {v}.", "{s} is a native of {v}.", "The birthplace of {s} is {v}."),
    "birth_year": ("{s} was born in the year {v}.", "The birth year of {s} is {v}."),
    "works_at": ("{s} works at {v}.", "{s} is employed by {v}.", "These days {s} works for {v}."),
    "founded_year": ("{s} was founded in {v}.", "{s} has existed since {v}."),
    "headquarters": ("{s} is headquartered in {v}.", "The head office of {s} is in {v}."),
    "made_by": ("The {s} is made by {v}.", "{v} makes the {s}."),
    "price": ("The {s} costs {v}.", "The {s} sells for {v}."),
}
FILLER: dict[str, tuple[str, ...]] = {
    "person": ("{s} enjoys long walks and old maps.", "Friends describe {s} as patient.", "{s} keeps a small garden."),
    "company": ("{s} publishes a yearly report.", "{s} is known for careful work.", "{s} sponsors a local choir."),
    "product": ("Reviewers praise the finish of the {s}.", "The {s} comes in three colours."),
}
PLACE_LINES: tuple[str, ...] = (
    "{s} is a quiet town on a wide river.",
    "Visitors to {s} enjoy the lantern festival in spring.",
    "The old bridge of {s} is painted every summer.",
    "Markets in {s} sell smoked fish and honey cakes.",
    "Winters in {s} are long and windy.",
    "A small museum in {s} shows carved boats.",
)


@dataclass(frozen=True)
class Document:
    """One document: id (file stem), extension, title, sentences, and the facts it states."""

    doc_id: str
    ext: str
    title: str
    sentences: tuple[str, ...]
    facts: tuple[Fact, ...]

    @property
    def filename(self) -> str:
        """The file name under docs/."""
        return f"{self.doc_id}.{self.ext}"

    def render(self) -> str:
        """The file's text in its format."""
        body = " ".join(self.sentences)
        if self.ext == "md":
            return f"# {self.title}\n\n{body}\n"
        if self.ext == "html":
            return f"<html><body>\n<h1>{html.escape(self.title)}</h1>\n<p>{html.escape(body)}</p>\n</body></html>\n"
        return f"{self.title}\n\n{body}\n"


def html_to_text(text: str) -> str:
    """Tag-stripped text of an html document, the way a plain loader would read it."""
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(re.sub(r"\n{2,}", "\n", text)).strip() + "\n"


def entity_document(doc_id: str, entities: list[Entity], rng: random.Random) -> Document:
    """A document about one or more entities of the same kind: every attribute as a sentence, plus filler."""
    sentences: list[str] = []
    for e in entities:
        fact_lines = [rng.choice(SENTENCES[r]).format(s=e.name, v=v) for r, v in e.attrs.items()]
        rng.shuffle(fact_lines)
        sentences.extend(fact_lines)
        if rng.random() < 0.5:
            sentences.insert(rng.randint(0, len(sentences)), rng.choice(FILLER[e.kind]).format(s=e.name))
    title = entities[0].name if len(entities) == 1 else f"{entities[0].attrs['made_by']} catalogue"
    return Document(doc_id, rng.choice(EXTENSIONS), title, tuple(sentences), tuple(entity_facts(entities)))


def place_document(doc_id: str, place: Entity, rng: random.Random) -> Document:
    """A distractor: a short travel note about a place, stating none of the world's facts."""
    lines = tuple(line.format(s=place.name) for line in rng.sample(PLACE_LINES, 3))
    return Document(doc_id, rng.choice(EXTENSIONS), f"Visiting {place.name}", lines, ())


def product_groups(products: list[Entity]) -> list[list[Entity]]:
    """Products grouped two by two per maker, in first-seen order, for catalogue documents."""
    by_maker: dict[str, list[Entity]] = {}
    for p in products:
        by_maker.setdefault(p.attrs["made_by"], []).append(p)
    return [group[i : i + 2] for group in by_maker.values() for i in range(0, len(group), 2)]


def world_documents(world: World) -> list[Document]:
    """Every document of the world; sets each subject entity's doc_id. Place notes are the distractors."""
    rng = random.Random(f"tunewise-lab-docs-{world.seed}")
    docs: list[Document] = []
    for i, person in enumerate(world.people):
        person.doc_id = f"p{i:04d}"
        docs.append(entity_document(person.doc_id, [person], rng))
    for i, company in enumerate(world.companies):
        company.doc_id = f"c{i:04d}"
        docs.append(entity_document(company.doc_id, [company], rng))
    for i, group in enumerate(product_groups(world.products)):
        doc_id = f"g{i:04d}"
        for product in group:
            product.doc_id = doc_id
        docs.append(entity_document(doc_id, group, rng))
    for i, place in enumerate(world.places[: len(world.places) * 3 // 4]):
        docs.append(place_document(f"t{i:04d}", place, rng))
    return docs
