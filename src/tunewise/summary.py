"""A run's Summary from its store alone: manifest + results -> decide. Works on unfinished runs too."""

from __future__ import annotations

from typing import Any

from tunewise.arms import ARMS
from tunewise.boost_stats import compare_with_baselines
from tunewise.decide import Summary, answered_scores, build_summary, summarize_arm
from tunewise.store import RunStore
from tunewise.task import Requirements


def fine_tuned_arms(manifest: dict[str, Any]) -> set[str]:
    """Names of the run's arms whose type trains a model (finetune, finetune_rag)."""
    return {
        p.get("name") or p["arm"]
        for p in manifest.get("arms", [])
        if p.get("arm") in ARMS and ARMS[p["arm"]][0].trains
    }


def summary_of(store: RunStore) -> Summary:
    """The summary of a run from its manifest and results alone."""
    manifest = store.manifest
    results = list(store.latest().values())
    training = manifest.get("training", {})
    seed = manifest.get("seed", 0)
    names = manifest["arm_names"]
    tuned = fine_tuned_arms(manifest)
    arms = [
        summarize_arm(
            name,
            [r for r in results if r.arm == name],
            seed=seed,
            fixed_cost=training.get(name, {}).get("fixed_cost", 0.0),
            fine_tuned=name in tuned,
            record=training.get(name, {}),
        )
        for name in names
    ]
    compare_with_baselines(arms, manifest["arms"])
    return build_summary(
        run_id=store.run_id,
        task=manifest["task"],
        model=manifest["model"],
        arms=arms,
        answered=answered_scores(results, names),
        requirements=Requirements.model_validate(manifest.get("requirements") or {}),
        seed=seed,
    )
