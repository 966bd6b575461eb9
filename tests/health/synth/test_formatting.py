from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from massalia.health.synth.sites.common import date_strings, datetime_strings, number_strings, prefixed, yyyymmdd


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-20_000, max_value=60_000), min_size=1, max_size=50))
def test_dates_match_python(days):
    arr = np.array(days)
    got = date_strings(arr, "%d/%m/%Y").to_pylist()
    ref = [(dt.date(1970, 1, 1) + dt.timedelta(days=d)).strftime("%d/%m/%Y") for d in days]
    assert got == ref
    assert yyyymmdd(arr).tolist() == [int(r[6:] + r[3:5] + r[:2]) for r in ref]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4_000_000_000), min_size=1, max_size=50))
def test_datetimes_match_python(seconds):
    got = datetime_strings(np.array(seconds), "%Y-%m-%dT%H:%M:%S").to_pylist()
    epoch = dt.datetime(1970, 1, 1)
    assert got == [(epoch + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S") for s in seconds]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=-(10**9), max_value=10**9), st.integers(min_value=0, max_value=3)),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
)
def test_numbers_round_trip(pairs, comma):
    scaled = np.array([p[0] for p in pairs])
    dec = np.array([p[1] for p in pairs])
    values = scaled / 10.0**dec
    got = number_strings(values, dec, comma=comma).to_pylist()
    for text, v, d in zip(got, values, dec, strict=True):
        assert abs(float(text.replace(",", ".")) - v) <= 0.5 * 10.0**-d + 1e-9
        sep = "," if comma else "."
        assert (len(text.split(sep)[1]) if sep in text else 0) == d


def test_prefixed_refuses_overflow():
    assert prefixed(np.array([5]), "CS", 7).to_pylist() == ["CS0000005"]
    with pytest.raises(ValueError, match="out of range"):
        prefixed(np.array([10**7]), "CS", 7)
