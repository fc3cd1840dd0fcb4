"""Runtime verification of conversations: a premise graph per conversation and the arm wrapper that consults it."""

from tunewise.verify.graph import CycleError, Event, GraphError, Node, Operation, PremiseGraph, Support, UnknownNode
from tunewise.verify.groundedness import grounded

__all__ = [
    "CycleError", "Event", "GraphError", "Node", "Operation", "PremiseGraph", "Support", "UnknownNode", "grounded",
]
