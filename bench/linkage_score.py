"""Scoring of predicted record pairs against the truth, shared by bench/linkage.py and its test."""

from __future__ import annotations

from collections import Counter


def true_pair_count(left_entity: dict, right_entity: dict) -> int:
    """Record pairs (one from each file) that belong to the same entity."""
    left, right = Counter(left_entity.values()), Counter(right_entity.values())
    return sum(n * right[e] for e, n in left.items() if e in right)


def score(pairs, left_entity: dict, right_entity: dict) -> dict:
    """``pairs``: (left id, right id) tuples. Precision, recall and F1 over record pairs.

    A pair naming a record the truth does not know is an error in the caller, not a miss.
    """
    pairs = set(pairs)
    tp = sum(left_entity[a] == right_entity[b] for a, b in pairs)
    true = true_pair_count(left_entity, right_entity)
    precision = tp / len(pairs) if pairs else 0.0
    recall = tp / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "predicted": len(pairs), "true": true,
            "precision": precision, "recall": recall, "f1": f1}
