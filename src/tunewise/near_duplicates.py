"""Near-duplicates by ROUGE-L, as Self-Instruct filters its pool: a candidate is a near-copy of a reference when
their ROUGE-L F-measure reaches a bound. References are indexed by token so only those that could reach it are
scored (ROUGE-L F = 2 LCS / (m + n), and the LCS is at most the tokens they share)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Match:
    """The reference a candidate copies, which set it came from, and their ROUGE-L."""

    kind: str
    text: str
    rouge_l: float


class NearDuplicates:
    """References of several kinds (train, dev, test, accepted) to find near-copies among."""

    def __init__(self, max_rouge_l: float = 0.7):
        from rouge_score import rouge_scorer, tokenize

        self.max_rouge_l = max_rouge_l
        self._scorer = rouge_scorer.RougeScorer(["rougeL"])
        self._tokenize = lambda text: tokenize.tokenize(text, None)
        self._refs: list[tuple[str, str, Counter[str]]] = []
        self._by_token: dict[str, list[int]] = defaultdict(list)

    def add(self, text: str, kind: str) -> None:
        tokens = Counter(self._tokenize(text))
        for token in tokens:
            self._by_token[token].append(len(self._refs))
        self._refs.append((kind, text, tokens))

    def __len__(self) -> int:
        return len(self._refs)

    def match(self, text: str) -> Match | None:
        """The closest reference at or above the bound, None when there is none."""
        tokens = Counter(self._tokenize(text))
        size = sum(tokens.values())
        if not size:
            return None
        shared: Counter[int] = Counter()
        for token, count in tokens.items():
            for i in self._by_token.get(token, ()):
                shared[i] += min(count, self._refs[i][2][token])
        best: Match | None = None
        for i, overlap in shared.items():
            kind, ref, ref_tokens = self._refs[i]
            if 2 * overlap / (size + sum(ref_tokens.values())) < self.max_rouge_l:
                continue
            score = self._scorer.score(ref, text)["rougeL"].fmeasure
            if score >= self.max_rouge_l and (best is None or score > best.rouge_l):
                best = Match(kind, ref, score)
        return best
