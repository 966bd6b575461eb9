"""House-dialect SQL gives the same results on every engine (expectations as data, results compared).

Each case is written once in DuckDB's dialect, transpiled by the engine, run on a small oncology-like
table, and its rows compared with the expected rows below. Known engine gaps are strict xfails.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from massalia.engine import Engine

D = dt.date
TS = dt.datetime

EVENTS = pa.table(
    {
        "event_id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
        "person_id": pa.array([1, 1, 2, 3, 4, 5], pa.int64()),
        "site": ["Marseille", "Marseille", "Nice", "L'Étang", "Nice", 'Aix "centre"'],
        "start_date": pa.array([D(2020, 1, 15), D(2020, 3, 1), D(2019, 12, 31), D(2021, 6, 30), D(2020, 2, 29), None]),
        "start_ts": pa.array(
            [TS(2020, 1, 15, 8, 30), TS(2020, 3, 1, 23, 59, 59), TS(2019, 12, 31, 12), None, TS(2020, 2, 29), None],
            pa.timestamp("us"),
        ),
        "value": pa.array([12.5, None, 7.25, 0.0, -3.5, 100.0], pa.float64()),
        "code": ["C50.9", "C50.1", "C61", "", None, "C34.1"],
        "n": pa.array([3, 1, 2, None, 5, 4], pa.int32()),
    }
)


@dataclass(frozen=True)
class Case:
    """One query and the rows every engine must return (``xfail``: engine → known reason)."""

    id: str
    sql: str
    rows: list[tuple[Any, ...]]
    xfail: dict[str, str] = field(default_factory=dict)


CASES = [
    # A one-column row of NULL is an empty CSV line in PostgreSQL's COPY output: it once vanished.
    Case(
        "one_column_nulls_are_rows",
        "SELECT start_date FROM events ORDER BY event_id",
        [(D(2020, 1, 15),), (D(2020, 3, 1),), (D(2019, 12, 31),), (D(2021, 6, 30),), (D(2020, 2, 29),), (None,)],
    ),
    Case("aggregate_of_no_rows_is_one_null", "SELECT max(value) AS top FROM events WHERE event_id < 0", [(None,)]),
    Case(
        "group_by_order_by",
        "SELECT site, count(*) AS events, sum(n) AS total, count(DISTINCT person_id) AS persons "
        "FROM events GROUP BY site ORDER BY site",
        [('Aix "centre"', 1, 4, 1), ("L'Étang", 1, None, 1), ("Marseille", 2, 4, 1), ("Nice", 2, 7, 2)],
    ),
    Case(
        "group_by_all_having",
        "SELECT site, max(value) AS top FROM events GROUP BY ALL HAVING count(*) > 1 ORDER BY top DESC",
        [("Marseille", 12.5), ("Nice", 7.25)],
    ),
    Case(
        "order_nulls_last",
        "SELECT event_id, value FROM events ORDER BY value DESC",
        [(6, 100.0), (1, 12.5), (3, 7.25), (4, 0.0), (5, -3.5), (2, None)],
    ),
    Case(
        "date_plus_days_and_interval_cast",
        "SELECT event_id, start_date + 7 AS week_later, CAST(start_date + INTERVAL 30 DAY AS DATE) AS month_later "
        "FROM events WHERE event_id IN (1, 5, 6) ORDER BY event_id",
        [(1, D(2020, 1, 22), D(2020, 2, 14)), (5, D(2020, 3, 7), D(2020, 3, 30)), (6, None, None)],
    ),
    Case(
        "date_plus_interval_is_timestamp",
        "SELECT start_date + INTERVAL 1 MONTH AS next_month FROM events WHERE event_id = 5",
        [(TS(2020, 3, 29),)],
        xfail={"spark": "Spark's date + interval gives a DATE where DuckDB and PostgreSQL give a TIMESTAMP"},
    ),
    Case(
        "date_diff_and_parts",
        "SELECT event_id, date_diff('day', start_date, DATE '2021-01-01') AS days, "
        "extract(year FROM start_date) AS y, month(start_date) AS m, dayofweek(start_date) AS dow "
        "FROM events WHERE start_date IS NOT NULL ORDER BY event_id",
        [
            (1, 352, 2020, 1, 3),
            (2, 306, 2020, 3, 0),
            (3, 367, 2019, 12, 2),
            (4, -180, 2021, 6, 3),
            (5, 307, 2020, 2, 6),
        ],
    ),
    Case(
        "timestamp_arithmetic",
        "SELECT event_id, start_ts + INTERVAL 90 MINUTE AS later, "
        "date_diff('hour', start_ts, TIMESTAMP '2020-03-02 00:00:00') AS hours, "
        "date_diff('day', start_ts, TIMESTAMP '2020-03-02 00:00:00') AS days "
        "FROM events WHERE event_id IN (1, 2) ORDER BY event_id",
        # date_diff counts unit boundaries crossed (DuckDB's meaning): 23:59:59 → 00:00 is 1 hour, 1 day.
        [(1, TS(2020, 1, 15, 10, 0), 1120, 47), (2, TS(2020, 3, 2, 1, 29, 59), 1, 1)],
    ),
    Case(
        "date_trunc_and_format",
        "SELECT event_id, CAST(date_trunc('month', start_date) AS DATE) AS month_start, "
        "strftime(start_date, '%Y-%m') AS ym FROM events WHERE event_id <= 3 ORDER BY event_id",
        [(1, D(2020, 1, 1), "2020-01"), (2, D(2020, 3, 1), "2020-03"), (3, D(2019, 12, 1), "2019-12")],
    ),
    Case(
        "make_date",
        "SELECT make_date(2024, 2, 29) AS leap",
        [(D(2024, 2, 29),)],
    ),
    Case(
        "window_functions",
        "SELECT event_id, row_number() OVER (PARTITION BY person_id ORDER BY start_date) AS rank_in_person, "
        "sum(n) OVER (PARTITION BY site) AS site_total, lag(code) OVER (ORDER BY event_id) AS previous_code "
        "FROM events ORDER BY event_id",
        [
            (1, 1, 4, None),
            (2, 2, 4, "C50.9"),
            (3, 1, 7, "C50.1"),
            (4, 1, None, "C61"),
            (5, 1, 7, ""),
            (6, 1, 4, None),
        ],
    ),
    Case(
        "qualify_first_per_person",
        "SELECT person_id, event_id FROM events "
        "QUALIFY row_number() OVER (PARTITION BY person_id ORDER BY start_date DESC) = 1 ORDER BY person_id",
        [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)],
    ),
    Case(
        "case_when",
        "SELECT event_id, CASE WHEN value IS NULL THEN 'missing' WHEN value < 0 THEN 'negative' "
        "WHEN value = 0 THEN 'zero' ELSE 'positive' END AS sign FROM events ORDER BY event_id",
        [(1, "positive"), (2, "missing"), (3, "positive"), (4, "zero"), (5, "negative"), (6, "positive")],
    ),
    Case(
        "string_functions",
        "SELECT event_id, upper(site) AS up, lower(site) AS low, length(site) AS len, substr(code, 1, 3) AS prefix, "
        "site || '/' || coalesce(code, '?') AS label, replace(code, '.', '') AS bare, left(site, 3) AS head, "
        "strpos(site, 'e') AS pos, split_part(code, '.', 2) AS sub, trim('  ' || site || ' ') AS trimmed "
        "FROM events WHERE event_id IN (3, 4, 5, 6) ORDER BY event_id",
        [
            (3, "NICE", "nice", 4, "C61", "Nice/C61", "C61", "Nic", 4, "", "Nice"),
            (4, "L'ÉTANG", "l'étang", 7, "", "L'Étang/", "", "L'É", 0, "", "L'Étang"),
            (5, "NICE", "nice", 4, None, "Nice/?", None, "Nic", 4, None, "Nice"),
            (6, 'AIX "CENTRE"', 'aix "centre"', 12, "C34", 'Aix "centre"/C34.1', "C341", "Aix", 7, "1", 'Aix "centre"'),
        ],
    ),
    Case(
        "like_ilike_regexp",
        "SELECT event_id FROM events WHERE code LIKE 'C50%' OR site ILIKE '%CENTRE%' "
        "OR regexp_matches(code, '^C6[0-9]$') ORDER BY event_id",
        [(1,), (2,), (3,), (6,)],
    ),
    Case(
        "string_agg_ordered",
        "SELECT site, string_agg(code, ',' ORDER BY code) AS codes FROM events "
        "WHERE code IS NOT NULL GROUP BY site ORDER BY site",
        [('Aix "centre"', "C34.1"), ("L'Étang", ""), ("Marseille", "C50.1,C50.9"), ("Nice", "C61")],
    ),
    Case(
        "null_versus_empty",
        "SELECT count(*) FILTER (WHERE code = '') AS empty, count(*) FILTER (WHERE code IS NULL) AS missing, "
        "count(code) AS present, sum(CASE WHEN nullif(code, '') IS NULL THEN 1 ELSE 0 END) AS blank FROM events",
        [(1, 1, 5, 2)],
    ),
    Case(
        "arithmetic_division_rounding",
        "SELECT 7 / 2 AS ratio, 7 // 2 AS quotient, 7 % 3 AS remainder, round(avg(value), 2) AS mean, "
        "round(sum(value) / 3, 1) AS third FROM events",
        [(3.5, 3, 1, 23.25, 38.8)],
    ),
    Case(
        "cte_join_subquery",
        "WITH firsts AS (SELECT person_id, min(start_date) AS first_date FROM events GROUP BY person_id) "
        "SELECT e.person_id, count(*) AS later FROM events e JOIN firsts f ON e.person_id = f.person_id "
        "WHERE e.start_date > f.first_date OR e.person_id IN (SELECT person_id FROM events WHERE value > 50) "
        "GROUP BY e.person_id ORDER BY e.person_id",
        [(1, 1), (5, 1)],
    ),
    Case(
        "cast_text_to_types",
        "SELECT CAST('42' AS INTEGER) AS i, CAST('2020-02-29' AS DATE) AS d, CAST('1.5' AS DOUBLE) AS f, "
        "CAST(12 AS VARCHAR) AS s",
        [(42, D(2020, 2, 29), 1.5, "12")],
    ),
    Case(
        "try_cast",
        "SELECT TRY_CAST('x' AS INTEGER) AS bad, TRY_CAST('7' AS INTEGER) AS good",
        [(None, 7)],
    ),
    Case(
        "try_cast_dates_and_numbers",
        "SELECT TRY_CAST('2023-02-30' AS DATE) AS bad_day, TRY_CAST('2023-02-28' AS DATE) AS day, "
        "TRY_CAST('1.5e3' AS DOUBLE) AS x, TRY_CAST('abc' AS DOUBLE) AS nan",
        [(None, dt.date(2023, 2, 28), 1500.0, None)],
    ),
    Case(
        "try_strptime",
        "SELECT TRY_STRPTIME('2023-01-15T10:30:00', '%Y-%m-%dT%H:%M:%S') AS iso, "
        "TRY_STRPTIME('31/12/2023', '%d/%m/%Y') AS fr, TRY_STRPTIME('20230230', '%Y%m%d') AS bad",
        [(dt.datetime(2023, 1, 15, 10, 30), dt.datetime(2023, 12, 31), None)],
    ),
    Case(
        "regexp_full_match_and_extract",
        "SELECT regexp_full_match('C50.9', 'C[0-9]{2}') AS partial, regexp_full_match('C50', 'C[0-9]{2}') AS whole, "
        "regexp_extract('cT2N1M0', 'N[0-9X]') AS n, regexp_extract('xyz', 'N[0-9X]') AS none",
        [(False, True, "N1", "")],
    ),
]


def normalize(value: Any) -> Any:
    """Compare values, not representations: exact numbers as int/float, floats to 9 digits."""
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return round(value, 9) if math.isfinite(value) else value
    return value


@pytest.fixture
def events_engine(engine: Engine) -> Engine:
    engine.create_table("events", EVENTS)
    return engine


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_same_results_on_every_engine(events_engine: Engine, case: Case, request: pytest.FixtureRequest) -> None:
    if events_engine.name in case.xfail:
        request.applymarker(pytest.mark.xfail(reason=case.xfail[events_engine.name], strict=True))
    result = events_engine.query(case.sql)
    rows = [tuple(normalize(v) for v in row.values()) for row in result.to_pylist()]
    expected = [tuple(normalize(v) for v in row) for row in case.rows]
    assert rows == expected, f"{events_engine.name} ran:\n{events_engine.render(case.sql)}"
    for row, expected_row in zip(result.to_pylist(), case.rows, strict=True):
        for got, want in zip(row.values(), expected_row, strict=True):
            # Dates must stay dates and timestamps timestamps (datetime is a subclass of date).
            assert type(got) is type(want) or want is None or isinstance(want, int | float | Decimal)
