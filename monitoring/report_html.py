"""The dashboard page: headline numbers, then one `<figure class="chart" data-chart=…>` per panel, CSS inline.

Nothing on the page points outside it (charts are data: URIs), so the file can be mailed,
archived or opened from a CI artefact. A small inline script marks each figure with
`data-rendered` once the page has loaded, which a headless browser's DOM dump then shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from monitoring import report_data as D  # noqa: N812
from monitoring.settings import MonitorSettings

RESULT_EXPLANATIONS: dict[str, str] = {
    "drift": "Drift score of each profile/feature against the champion's training reference (red: above the "
    "threshold {t}), from drift/latest.json.",
    "skew": "PSI of each feature's served values against the training rows (red: above {t}); decides only for "
    "the candidate columns and the score, the rest is information (time shifts distributions), from skew/latest.json.",
    "skew_replay": "Log and recompute: share of sampled served rows whose feature, rebuilt through the training path "
    "(Feast's offline store at the feature time serving used), differs from what serving computed (red: above {t}); "
    "the decisive skew check for those features, from skew/latest.json.",
}
"""Explanation line of the drift and skew panels ({t}: the threshold)."""


@dataclass(frozen=True)
class Panel:
    """One chart of the page: its id, title, explanation and either a PNG or the reason it has none."""

    key: str
    title: str
    explanation: str
    png: str | None = None
    missing: D.NoData | None = None
    source: str = ""
    extra_html: str = ""


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px}.meta{color:#666;font-size:13px;margin-bottom:16px}
.headline{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:24px}
.num{background:#fff;border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:170px}
.num .v{font-size:24px;font-weight:600}.num .l{font-size:12px;color:#666}
.num.bad{border-color:#e45756}.num.bad .v{color:#c0392b}.num.good .v{color:#2e7d32}
.num.none .v{font-size:14px;color:#999}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(820px,1fr));gap:16px}
figure.chart{background:#fff;border:1px solid #ddd;border-radius:8px;margin:0;padding:12px}
figure.chart h2{font-size:16px;margin:0 0 4px}.why{font-size:13px;color:#444;margin:0 0 6px}
.src{font-size:11px;color:#888;margin:0 0 6px}figure.chart img{max-width:100%;height:auto;display:block}
.nodata-card{border:2px dashed #ccc;border-radius:6px;padding:28px;text-align:center;color:#777;font-size:14px}
ul.schema{font-size:12px;margin:0 0 6px}
"""
"""The page's only style sheet."""

MARK_RENDERED = """
window.addEventListener('load', function () {
  document.querySelectorAll('figure.chart').forEach(function (f) {
    var img = f.querySelector('img');
    if (img) {
      var ok = img.complete && img.naturalWidth > 0;
      f.setAttribute('data-rendered', ok ? 'image ' + img.naturalWidth + 'x' + img.naturalHeight : 'broken');
    } else {
      f.setAttribute('data-rendered', f.querySelector('.nodata-card') ? 'nodata' : 'broken');
    }
  });
  document.body.setAttribute('data-height', String(document.documentElement.scrollHeight));
  document.body.setAttribute('data-checked', 'true');
});
"""
"""Marks each figure after load: `image WxH` (decoded), `nodata` (a card) or `broken`; the body gets the page height."""


def _number(label: str, value: str, css: str = "") -> str:
    return f'<div class="num {css}"><div class="v">{escape(value)}</div><div class="l">{escape(label)}</div></div>'


def _missing(label: str, reason: D.NoData) -> str:
    return (f'<div class="num none" title="{escape(reason.reason)}"><div class="v">no data</div>'
            f'<div class="l">{escape(label)}: {escape(reason.reason)}</div></div>')  # fmt: skip


def headline_html(head: D.Headline) -> str:
    """The row of headline numbers; a missing one says why."""
    out = []
    out.append(_missing("requests", head.requests) if isinstance(head.requests, D.NoData)
               else _number("recommendation requests", f"{head.requests:,}"))  # fmt: skip
    for label, value in (("availability (200 within SLA)", head.availability), ("hit rate", head.hit_rate)):
        out.append(_missing(label, value) if isinstance(value, D.NoData) else _number(label, f"{value:.1%}"))
    budget = head.cost_budget_per_1k
    if isinstance(head.cost_per_1k, D.NoData):
        out.append(_missing("cost per 1,000 requests", head.cost_per_1k))
    else:
        over = head.cost_per_1k > budget
        out.append(_number(f"watch cost per 1,000 answered requests (budget {budget:,.0f} USD)",
                           f"{head.cost_per_1k:,.2f} USD", "bad" if over else "good"))  # fmt: skip
    if not isinstance(head.list_cost_per_1k, D.NoData):
        out.append(
            _number(
                "cost of the lists served per 1,000 answered requests", f"{head.list_cost_per_1k:,.0f} USD"
            )
        )
    for label, counts in (("features drifted", head.drifted), ("features skewed", head.skewed)):
        if isinstance(counts, D.NoData):
            out.append(_missing(label, counts))
        else:
            out.append(_number(f"{label} (of {counts[1]})", str(counts[0]), "bad" if counts[0] else "good"))
    rating = head.mean_rating
    out.append(_missing("mean rating after a hit", rating) if isinstance(rating, D.NoData)
               else _number("mean rating of recommended movies after a hit", f"{rating:.2f} ★"))  # fmt: skip
    return '<section class="headline">' + "".join(out) + "</section>"


def panel_html(panel: Panel) -> str:
    """One figure: caption (title, explanation, source) and the chart image or the no-data card."""
    source = f'<p class="src">source: {escape(panel.source)}</p>' if panel.source else ""
    caption = (f"<figcaption><h2>{escape(panel.title)}</h2><p class=\"why\">{escape(panel.explanation)}</p>"
               f"{source}{panel.extra_html}</figcaption>")  # fmt: skip
    if panel.png is not None:
        body = f'<img alt="{escape(panel.title)}" src="data:image/png;base64,{panel.png}">'
        state = "chart"
    else:
        reason = panel.missing.reason if panel.missing is not None else "nothing to draw"
        body = f'<div class="nodata-card">No data because {escape(reason)}</div>'
        state = "nodata"
    return f'<figure class="chart" data-chart="{escape(panel.key)}" data-state="{state}">{caption}{body}</figure>'


def render(head: D.Headline, panels: list[Panel], settings: MonitorSettings, *, seconds: float) -> str:
    """The whole page as one string."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    meta = (f"written {now} from {escape(str(settings.var_dir))} in {seconds:.1f} s; Prometheus "
            f"{escape(settings.prometheus_url)}; SLA {settings.sla_ms} ms; windows of {settings.window_s} s")  # fmt: skip
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>recsys monitoring</title><style>{CSS}</style></head><body>"
        f'<h1>Recommendation service: monitoring</h1><div class="meta">{meta}</div>'
        f"{headline_html(head)}"
        f'<section class="grid">{"".join(panel_html(p) for p in panels)}</section>'
        f"<script>{MARK_RENDERED}</script></body></html>"
    )
