"""summary.json: its types. The contract of DESIGN.md per arm (name, score, ci, n, cost_per_1k, fixed_cost,
p50/p95 latency, tokens, errors) and the recommendation; the rest is additive."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from tunewise.arms.base import ArmExtras
from tunewise.spec import Requirements


class RecordedExtras(ArmExtras):
    """An arm's extras read back from summary.json, where the class that wrote them is not known: the fields as
    recorded."""

    model_config = ConfigDict(extra="allow")


class ArmRacing(BaseModel):
    """Why racing dropped an arm before the full test set, and what that saved (estimated from its answers so far)."""

    dropped_round: int = Field(description="the round after which it was dropped (1 = the first)")
    n: int = Field(description="the test examples it had answered then")
    score: float = Field(description="its score on them (errors count as 0)")
    ci: list[float | None] = Field(description="95% CI of that score (as the arms' `ci`)")
    rule: Literal["min_score", "worse", "dominated", "cap", "unclear"]
    reason: str
    tokens_saved_est: float = Field(0.0, description="tokens per query so far x the test examples it did not answer")
    dollars_saved_est: float = Field(0.0, description="US$ per query so far x the test examples it did not answer")


class ArmSummary(BaseModel):
    """One arm's row in summary.json. Costs in US$; tokens are means per query."""

    name: str
    score: float
    ci: list[float | None] = Field(description="95% CI of the score; [null, null] before the arm has results")
    n: int
    cost_per_1k: float
    fixed_cost: float = 0.0
    p50_latency_ms: float
    p95_latency_ms: float
    tokens_in: float
    tokens_out: float
    errors: int
    calls: int
    cached_calls: int
    fresh_cost: float
    recall_at_k: float | None = None
    groundedness: float | None = Field(None, description="share of the answers given with retrieved passages that"
                                       " the offline check finds in them (answer-in-passage by normalised overlap)")
    mrr: float | None = None
    retrieval_k: int | None = None
    stale_rate: float | None = Field(None, description="share of answers resting on a superseded or retracted"
                                     " premise, over the examples with stale answers answered without error")
    stale_ci: list[float] | None = Field(None, description="95% Wilson CI of stale_rate")
    stale_n: int | None = Field(None, description="the examples stale_rate is over")
    abstention_rate: float | None = Field(None, description="share of examples the arm declined to answer")
    answered_score: float | None = Field(None, description="mean score over the examples it did not decline"
                                         " (errors score 0)")
    ci_method: str | None = None
    fine_tuned: bool = False
    pareto: bool = False
    monthly_cost: float | None = None
    extras: SerializeAsAny[ArmExtras] | None = Field(
        None, description="the arm's own statistics (its ArmExtras class: maj@k curves, gate rates, training ...)"
    )
    racing: ArmRacing | None = Field(None, description="set when racing dropped the arm before the full test set")

    @field_validator("extras", mode="before")
    @classmethod
    def _recorded(cls, value: Any) -> Any:
        return RecordedExtras.model_validate(value) if isinstance(value, dict) else value


class StaleComparison(BaseModel):
    """McNemar's exact test on the stale indicator, on the examples with stale answers both arms answered."""

    n: int
    a_stale: int = Field(description="examples where only `a` gave a stale answer")
    b_stale: int = Field(description="examples where only `b` did")
    p_value: float
    p_holm: float


class Comparison(BaseModel):
    """Arm `a` against arm `b` on the examples both answered without error."""

    a: str
    b: str
    n: int
    a_score: float
    b_score: float
    diff: float
    a_better: int
    b_better: int
    method: str
    p_value: float
    p_holm: float
    significant: bool
    ci: list[float] | None = None
    stale: StaleComparison | None = None

    def flipped(self) -> Comparison:
        """The same comparison seen from `b`."""
        return self.model_copy(
            update={
                "a": self.b, "b": self.a, "a_score": self.b_score, "b_score": self.a_score, "diff": -self.diff,
                "a_better": self.b_better, "b_better": self.a_better,
                "ci": [-self.ci[1], -self.ci[0]] if self.ci else None,
                "stale": self.stale and self.stale.model_copy(
                    update={"a_stale": self.stale.b_stale, "b_stale": self.stale.a_stale}),
            }
        )


class BreakEven(BaseModel):
    """When a fine-tuned arm's one-off cost is repaid by cheaper queries than the prompting arm it can replace."""

    arm: str
    against: str | None
    fixed_cost: float
    margin: float | None = Field(None, description="the equivalence margin of the non-inferiority test")
    p_value: float | None = Field(None, description="its one-sided p-value against `against` (or the best prompting arm)")
    saving_per_1k: float | None = None
    queries_to_repay: float | None = None
    monthly_volume: float | None = None
    months_to_repay: float | None = None
    note: str


class Recommendation(BaseModel):
    arm: str | None
    meets_requirements: bool
    reasons: list[str]


class RacingRound(BaseModel):
    """One round of a race: its share of the test split, its examples, and the arms that were to answer them."""

    round: int
    share: float
    n: int
    arms: list[str]


class RacingSummary(BaseModel):
    """How a racing run went: its test, the rounds, what it spent and what it saved against every arm seeing every
    test example (estimated from the rounds the dropped arms skipped)."""

    method: str
    alpha: float = Field(description="the chance of ever dropping an arm for a false reason")
    level: float = Field(description="the level of each test: alpha over the most tests that can drop one arm")
    rounds: list[RacingRound]
    dropped: list[str]
    tokens_spent: int = Field(description="tokens of every answer recorded")
    tokens_saved_est: float
    tokens_exhaustive_est: float
    dollars_spent: float = Field(description="US$ of every answer recorded, at the run's prices")
    dollars_saved_est: float


class Budget(BaseModel):
    """The budget a run was given (`--budget`) and what it had spent when it stopped, in US$."""

    usd: float
    spent: float


class Summary(BaseModel):
    """The contract of summary.json (see DESIGN.md); extra fields are additive."""

    run_id: str
    task: str
    model: str
    prices: dict[str, float] | None = Field(None, description="the model's US$ per 1M tokens the costs are priced at")
    arms: list[ArmSummary]
    recommendation: Recommendation
    requirements: Requirements = Requirements()
    comparisons: list[Comparison] = []
    break_even: list[BreakEven] = []
    status: str | None = Field(None, description="the run's status: complete, running, interrupted, budget reached")
    budget: Budget | None = None
    racing: RacingSummary | None = None
