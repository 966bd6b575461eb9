"""The patient id each site writes: what the generator's ground truth and the clinical documents both name.

A module of its own, below both :mod:`massalia.health.synth.generate` and :mod:`massalia.health.synth.documents`,
so that documents no longer imports the generator inside a function to dodge a cycle.
"""

from __future__ import annotations

import numpy as np

from massalia.health.synth.sites import ch_est
from massalia.health.synth.sites.common import prefixed


def source_ids(site: str, index: np.ndarray) -> list[str]:
    """The patient id each site writes for global indexes ``index``.

    Examples
    --------
    >>> source_ids("clcc_sud", np.array([12]))
    ['CS0000012']
    """
    if site == "chu_nord":
        return [str(100_000_000 + int(i)) for i in index]
    if site == "clcc_sud":
        return prefixed(index, "CS", 7).to_pylist()
    return ch_est.nip(index)
