"""summary.json: its types. The contract of DESIGN.md per arm (name, score, ci, n, cost_per_1k, fixed_cost,
p50/p95 latency, tokens, errors) and the recommendation; the rest is additive."""

from __future__ import annotations

from pydantic import BaseModel, Field, SerializeAsAny

from tunewise.arms.base import ArmExtras
from tunewise.spec import Requirements


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
    mrr: float | None = None
    retrieval_k: int | None = None
    ci_method: str | None = None
    fine_tuned: bool = False
    pareto: bool = False
    monthly_cost: float | None = None
    extras: SerializeAsAny[ArmExtras] | None = Field(
        None, description="the arm's own statistics (its ArmExtras class: maj@k curves, gate rates, training ...)"
    )


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

    def flipped(self) -> Comparison:
        """The same comparison seen from `b`."""
        return self.model_copy(
            update={
                "a": self.b, "b": self.a, "a_score": self.b_score, "b_score": self.a_score, "diff": -self.diff,
                "a_better": self.b_better, "b_better": self.a_better,
                "ci": [-self.ci[1], -self.ci[0]] if self.ci else None,
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
