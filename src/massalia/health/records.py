"""Warehouse rows as JSON: what the interfaces (API, CLI ``--json``) send when they show records.

Dates and times become ISO 8601 strings, decimals numbers, NaN and infinities ``null`` (JSON has none),
so every interface shows one record the same way.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from decimal import Decimal
from typing import Any

import pyarrow as pa


def json_value(value: object) -> Any:
    """One warehouse value as a JSON value.

    Examples
    --------
    >>> json_value(dt.date(2021, 3, 4)), json_value(Decimal("1.5")), json_value(float("nan")), json_value(7)
    ('2021-03-04', 1.5, None, 7)
    """
    if isinstance(value, dt.date | dt.time):  # a datetime is a date
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return value


def json_table(table: pa.Table) -> dict[str, Any]:
    """An Arrow table as ``{"columns": [...], "rows": [{column: value}, ...]}`` with JSON values.

    Examples
    --------
    >>> json_table(pa.table({"person_id": [1], "birth_datetime": [dt.datetime(1950, 1, 2, 8, 30)]}))
    {'columns': ['person_id', 'birth_datetime'], 'rows': [{'person_id': 1, 'birth_datetime': '1950-01-02T08:30:00'}]}
    """
    rows = [{key: json_value(value) for key, value in row.items()} for row in table.to_pylist()]
    return {"columns": list(table.column_names), "rows": rows}
