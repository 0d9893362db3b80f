"""A frame's scores standardised over the whole map: the unit every calibration reads.

A raw similarity means little alone: some frames score high against everything (a bland
street), others low. As in SeqSLAM's contrast enhancement, a frame's score at entry e is
standardised over the map, ``z_e = (q . e - q . mu) / sqrt(q^T Sigma q)``, with mu and Sigma
the mean and covariance of the map's embeddings: computed once per map, so the exact
whole-map mean and spread of a frame's scores cost O(D^2) per frame whatever the map's size.
"""

from __future__ import annotations

import numpy as np

__all__ = ["embedding_stats", "standardized"]

#: rows used for the embedding statistics (a deterministic subsample of bigger maps)
_STATS_ROWS = 65_536


def embedding_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of the rows (a fixed subsample of large maps)."""
    n = len(embeddings)
    if n > _STATS_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(n, _STATS_ROWS, replace=False))
        sample = np.asarray(embeddings[rows], np.float64)
    else:
        sample = np.asarray(embeddings, np.float64)
    mean = sample.mean(axis=0)
    centred = sample - mean
    cov = centred.T @ centred / max(len(sample) - 1, 1)
    # a map of one entry (or identical ones) has no spread: keep the z-scores finite
    cov[np.diag_indices_from(cov)] += 1e-9 * max(float(np.trace(cov)) / len(mean), 1e-12)
    return mean, cov


def standardized(queries: np.ndarray, scores: np.ndarray, mean: np.ndarray, cov: np.ndarray
                 ) -> np.ndarray:  # fmt: skip
    """z-scores of ``scores`` (Q, K) of ``queries`` (Q, D) over a map of ``mean``, ``cov``."""
    q = np.asarray(queries, np.float64)
    mu = q @ mean
    sd = np.sqrt(np.maximum(np.einsum("nd,de,ne->n", q, cov, q), 1e-24))
    return (np.asarray(scores, np.float64) - mu[:, None]) / sd[:, None]
