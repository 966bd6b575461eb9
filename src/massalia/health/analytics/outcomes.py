"""Time-to-event endpoints read from the research mart: overall, progression-free, relapse-free, relapse.

Each endpoint names the mart variables it reads and turns a frame of mart rows into ``time`` (months since
diagnosis) and ``event`` (0 censored, 1 the event, 2 a competing event where the endpoint has one).

Examples
--------
>>> ENDPOINTS["os"].variables
('os_days', 'os_event')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

DAYS_PER_MONTH = 30.4375
MIN_TIME_MONTHS = 1.0 / DAYS_PER_MONTH  # an event on the day of diagnosis counts as after half a day at risk


def _flag(frame: pd.DataFrame, name: str) -> np.ndarray:
    column = frame[name]
    return column.where(column.notna(), other=False).astype(bool).to_numpy()  # a missing flag is false


def _days(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].astype(float).to_numpy()


def _os(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return _days(frame, "os_days"), _flag(frame, "os_event").astype(int)


def _pfs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return _days(frame, "pfs_days"), _flag(frame, "pfs_event").astype(int)


def _relapse(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Relapse or progression; death first is a competing event (2), otherwise censored at follow-up end."""
    relapse = _flag(frame, "had_relapse") & frame["days_to_relapse"].notna().to_numpy()
    died = _flag(frame, "os_event")
    time = np.where(relapse, _days(frame, "days_to_relapse"), _days(frame, "os_days"))
    event = np.where(relapse, 1, np.where(died, 2, 0))
    return time, event


def _second_cancer(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A second primary cancer; death first is a competing event (2)."""
    second = _flag(frame, "had_second_cancer") & frame["days_to_second_cancer"].notna().to_numpy()
    died = _flag(frame, "os_event")
    time = np.where(second, _days(frame, "days_to_second_cancer"), _days(frame, "os_days"))
    event = np.where(second, 1, np.where(died, 2, 0))
    return time, event


@dataclass(frozen=True)
class Endpoint:
    """A time-to-event endpoint: the mart variables it reads and how they become (time, event)."""

    name: str
    label: str
    variables: tuple[str, ...]
    read: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]
    competing: str | None = None

    def time_event(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Months since diagnosis (at least one day) and the event code; rows without a time are NaN."""
        days, event = self.read(frame)
        months = np.maximum(days / DAYS_PER_MONTH, MIN_TIME_MONTHS)
        return np.where(np.isnan(days), np.nan, months), event.astype(int)


ENDPOINTS: dict[str, Endpoint] = {
    endpoint.name: endpoint
    for endpoint in (
        Endpoint("os", "overall survival (death from any cause)", ("os_days", "os_event"), _os),
        Endpoint("pfs", "progression-free survival (progression or death)", ("pfs_days", "pfs_event"), _pfs),
        # Relapse-free survival reads the same mart events (relapse or death) as PFS: restrict the cohort to
        # patients treated with curative intent (e.g. metastatic_at_diagnosis = false) to read it as RFS.
        Endpoint("rfs", "relapse-free survival (relapse or death)", ("pfs_days", "pfs_event"), _pfs),
        Endpoint(
            "relapse",
            "relapse or progression (death first is a competing event)",
            ("had_relapse", "days_to_relapse", "os_days", "os_event"),
            _relapse,
            competing="death before relapse",
        ),
        Endpoint(
            "second_cancer",
            "second primary cancer (death first is a competing event)",
            ("had_second_cancer", "days_to_second_cancer", "os_days", "os_event"),
            _second_cancer,
            competing="death before a second cancer",
        ),
    )
}
"""The endpoints an analysis may name; ``relapse`` and ``second_cancer`` have a competing event (death)."""
