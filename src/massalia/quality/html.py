"""The self-contained HTML quality report: cards, a per-category chart, failed checks with SQL.

Everything is inline (CSS, JavaScript, SVG): hospitals open it offline and no CDN is ever used.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from massalia.quality.report import CheckResult, QualityReport

_COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "not_applicable": "#9e9e9e", "error": "#ef6c00"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2430}
header{background:#1d3557;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.8;font-size:13px}main{padding:24px 32px;max-width:1400px;box-sizing:border-box}
.cards{display:flex;gap:16px;flex-wrap:wrap}.card{background:#fff;border-radius:8px;padding:14px 20px;
min-width:150px;box-shadow:0 1px 3px rgba(0,0,0,.12)}.card .v{font-size:28px;font-weight:600}
.card .l{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#5b6472}
section{background:#fff;border-radius:8px;padding:16px 20px;margin-top:20px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h2{font-size:16px;margin:0 0 12px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e6ea;vertical-align:top;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
th{cursor:pointer;background:#eef1f5;user-select:none;position:sticky;top:0}th:hover{background:#dde3ea}
td:last-child{max-width:520px}
td.num{text-align:right;font-variant-numeric:tabular-nums}input{padding:6px 10px;width:320px;font-size:13px;
border:1px solid #c5ccd6;border-radius:4px;margin-bottom:10px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:11px;background:#f3f4f6;padding:8px;border-radius:4px;
max-width:100%;box-sizing:border-box}.s{display:inline-block;padding:1px 8px;
border-radius:10px;color:#fff;font-size:11px}.legend span{margin-right:14px;font-size:12px}
"""

_JS = """
const rows=[...document.querySelectorAll('#failed tbody tr')];
document.getElementById('filter').addEventListener('input',e=>{const q=e.target.value.toLowerCase();
rows.forEach(r=>{r.style.display=r.textContent.toLowerCase().includes(q)?'':'none'})});
document.querySelectorAll('#failed th').forEach((th,i)=>th.addEventListener('click',()=>{
const body=th.closest('table').tBodies[0];const asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
const key=r=>{const t=r.cells[i].dataset.v??r.cells[i].textContent;const n=parseFloat(t);return isNaN(n)?t:n};
[...body.rows].sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*(asc?1:-1)})
.forEach(r=>body.appendChild(r))}));
"""


def _badge(status: str) -> str:
    return f'<span class="s" style="background:{_COLOURS[status]}">{escape(status.replace("_", " "))}</span>'


def _chart(summary: dict) -> str:
    """Horizontal stacked bars: results per Kahn category, coloured by status."""
    categories = summary["category"]
    width, bar, gap, label = 720, 26, 12, 140
    most = max((sum(counts.values()) for counts in categories.values()), default=1) or 1
    height = len(categories) * (bar + gap) + 10
    parts = [f'<svg width="{width + label + 60}" height="{height}" role="img" aria-label="results per category">']
    for row, (category, counts) in enumerate(categories.items()):
        y = 5 + row * (bar + gap)
        parts.append(f'<text x="0" y="{y + bar * 0.7}" font-size="13">{escape(category)}</text>')
        x = float(label)
        for status, colour in _COLOURS.items():
            size = width * counts.get(status, 0) / most
            if size > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{size:.1f}" height="{bar}" fill="{colour}">'
                    f"<title>{escape(category)}: {counts[status]} {status}</title></rect>"
                )
            x += size
        parts.append(f'<text x="{x + 6:.1f}" y="{y + bar * 0.7}" font-size="12">{sum(counts.values())}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _row(result: CheckResult) -> str:
    target = ".".join(str(p) for p in (result.table, result.field, result.concept_id) if p is not None)
    percent = "" if result.percent_violated is None else f"{result.percent_violated:.2f}"
    detail = escape(result.message or result.description)
    sql = f"<details><summary>SQL</summary><pre>{escape(result.sql)}</pre></details>" if result.sql else ""
    return (
        f"<tr><td>{_badge(result.status)}</td><td>{escape(result.check_name)}</td><td>{escape(result.level)}</td>"
        f"<td>{escape(target)}</td><td>{escape(result.category)}</td><td>{escape(result.severity)}</td>"
        f'<td class="num">{result.num_violated_rows if result.num_violated_rows is not None else ""}</td>'
        f'<td class="num">{result.num_denominator_rows if result.num_denominator_rows is not None else ""}</td>'
        f'<td class="num" data-v="{percent or -1}">{percent}</td><td class="num">{result.threshold:g}</td>'
        f"<td>{detail}{sql}</td></tr>"
    )


def render_html(report: QualityReport) -> str:
    """The report as one HTML page with inline CSS, JavaScript and SVG."""
    summary = report.summary()
    status = summary["status"]
    rate = "n/a" if summary["pass_rate"] is None else f"{summary['pass_rate']:.1f} %"
    cards = [("checks run", summary["total"]), ("pass rate", rate)] + [
        (name.replace("_", " "), status[name]) for name in ("passed", "failed", "not_applicable", "error")
    ]
    card_html = "".join(
        f'<div class="card"><div class="v">{v}</div><div class="l">{escape(k)}</div></div>' for k, v in cards
    )
    problems = sorted(
        (r for r in report.results if r.status in ("failed", "error")),
        key=lambda r: (r.status != "error", -(r.percent_violated or 0)),
    )
    severity = "".join(
        f"<tr><td>{escape(name)}</td>" + "".join(f'<td class="num">{counts[s]}</td>' for s in _COLOURS) + "</tr>"
        for name, counts in summary["severity"].items()
    )
    legend = "".join(
        f'<span><b style="color:{c}">■</b> {escape(s.replace("_", " "))}</span>' for s, c in _COLOURS.items()
    )
    status_headers = "".join(f"<th>{escape(s.replace('_', ' '))}</th>" for s in _COLOURS)
    headers = "".join(
        f"<th>{h}</th>"
        for h in (
            "Status",
            "Check",
            "Level",
            "Table.field.concept",
            "Category",
            "Severity",
            "Violated",
            "Denominator",
            "% violated",
            "Threshold %",
            "Detail",
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Massalia — data quality report</title><style>{_CSS}</style></head>
<body><header><h1>Data quality report</h1>
<p>OHDSI DataQualityDashboard v2.8.4 checks and Massalia oncology rules · engine {escape(report.engine)} ·
{escape(report.started_at)} · {report.seconds:.1f} s</p></header>
<main><div class="cards">{card_html}</div>
<section><h2>Results per Kahn category</h2><div class="legend">{legend}</div>{_chart(summary)}</section>
<section><h2>Results per severity</h2><table><thead><tr><th>Severity</th>
{status_headers}</tr></thead><tbody>{severity}</tbody></table></section>
<section><h2>Failed checks and errors ({len(problems)})</h2>
<input id="filter" type="search" placeholder="Filter (table, check, category…)">
<div class="scroll"><table id="failed"><thead><tr>{headers}</tr></thead>
<tbody>{"".join(_row(r) for r in problems)}</tbody></table></div>
</section></main><script>{_JS}</script></body></html>
"""
