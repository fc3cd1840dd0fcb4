"""The decision: from a run's scored results to numbers per arm with CIs, paired comparisons, the Pareto
front, break-even volumes and the recommendation (summary.json), and two runs compared.

    schema        summary.json's types
    stats         CIs of a mean, paired tests, Holm
    comparisons   every pair of arms on the examples both answered
    costs         monthly cost, the Pareto front
    break_even    when fine-tuning pays for itself
    recommend     the cheapest arm meeting the requirements, with reasons
    racing        which arms a racing run's rounds so far rule out (anytime-valid betting tests)
    summary       summary_of(store): all of it, from the run store alone
    compare       compare_runs(a, b)
"""

from tunewise.decide.schema import ArmSummary, BreakEven, Comparison, Recommendation, Summary

__all__ = ["ArmSummary", "BreakEven", "Comparison", "Recommendation", "Summary"]
