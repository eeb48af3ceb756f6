"""report.html: one self-contained file, nothing fetched.

A timeline drawn as inline SVG: fault windows as shaded bands (one `rect.fault-band`
per fault, spanning every panel) over throughput, error rate, latency, the oracle's
reference price against the price the exchange used (per market, with liquidations and
blocked attempts marked), liquidations and block height; then tables of the
invariants, the violations (one `tr.violation` per violation kept as evidence), the
recovery times, the coverage per fault window and the `sometimes` rules. A
Content-Security-Policy forbids every fetch, so the file renders the same offline.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from l2chaos.invariants.check import CheckOutcome
from l2chaos.invariants.record import FaultRecord, RunRecord
from l2chaos.rundir.json_types import as_list, as_object

from .series import LiquidationPoint, Timeline, build_timeline

__all__ = ["render_html", "write_html"]

_W = 1180  # svg width
_LEFT = 80  # room for the y labels
_RIGHT = 20
_PANEL_H = 110
_GAP = 26
_TOP = 34
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.pass{background:#2e7d32}.fail{background:#c62828}.error{background:#6a1b9a}.na{background:#757575}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.35 ui-monospace,Menlo,Consolas,monospace}pre{white-space:pre-wrap;margin:0}
details summary{cursor:pointer;color:#1565c0}
svg text{font:11px system-ui,sans-serif;fill:#333}.axis{stroke:#999;stroke-width:1}
.fault-band{fill:#ef5350;fill-opacity:.13;stroke:#ef5350;stroke-opacity:.5}
.grid{stroke:#eee}.series{fill:none;stroke-width:1.5}.legend{font-size:11px}
ul.problems{margin:6px 0;color:#c62828}.scroll{overflow-x:auto}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _fmt_num(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a >= 1 or a == 0:
        return f"{v:.3g}"
    return f"{v:.2g}"


class _Panel:
    def __init__(self, title: str, top: float, end_s: float, ymin: float, ymax: float) -> None:
        self.title = title
        self.top = top
        self.end_s = end_s
        if ymax <= ymin:
            ymax = ymin + 1.0
        self.ymin, self.ymax = ymin, ymax
        self.parts: list[str] = []

    def x(self, t: float) -> float:
        return _LEFT + (_W - _LEFT - _RIGHT) * max(0.0, min(t, self.end_s)) / self.end_s

    def y(self, v: float) -> float:
        frac = (v - self.ymin) / (self.ymax - self.ymin)
        return self.top + _PANEL_H * (1 - max(0.0, min(1.0, frac)))

    def frame(self) -> None:
        b = self.top + _PANEL_H
        self.parts.append(
            f'<text x="{_LEFT}" y="{self.top - 6:.1f}" font-weight="600">{_e(self.title)}</text>'
        )
        for frac in (0.0, 0.5, 1.0):
            v = self.ymin + frac * (self.ymax - self.ymin)
            y = self.y(v)
            self.parts.append(
                f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            )
            self.parts.append(
                f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt_num(v)}</text>'
            )
        self.parts.append(
            f'<line class="axis" x1="{_LEFT}" x2="{_LEFT}" y1="{self.top}" y2="{b}"/>'
        )
        self.parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{b}" y2="{b}"/>')

    def line(
        self, pts: Sequence[tuple[float, float]], color: str, label: str, dash: str = ""
    ) -> None:
        if not pts:
            return
        d = " ".join(f"{self.x(t):.1f},{self.y(v):.1f}" for t, v in pts)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(
            f'<polyline class="series" data-series="{_e(label)}" stroke="{color}"{extra} points="{d}">'
            f"<title>{_e(label)}</title></polyline>"
        )

    def marks(self, pts: Sequence[LiquidationPoint], color: str, hollow: bool) -> None:
        for p in pts:
            v = p.price
            if v is None:
                continue
            fill = "none" if hollow else color
            what = "blocked" if hollow else "liquidation"
            tip = f"{what} t={p.t_s}s account {p.account} {p.market} price {v} block {p.block}" + (
                f" guard {p.guard}" if p.guard else ""
            )
            self.parts.append(
                f'<circle class="{what}-mark" cx="{self.x(p.t_s):.1f}" cy="{self.y(v):.1f}" r="3.2" '
                f'fill="{fill}" stroke="{color}"><title>{_e(tip)}</title></circle>'
            )

    def legend(self, items: Sequence[tuple[str, str]]) -> None:
        x: float = _W - _RIGHT - 10
        for label, color in reversed(items):
            w = 8 + 6.5 * len(label)
            x -= w + 16
            self.parts.append(
                f'<rect x="{x:.1f}" y="{self.top - 15:.1f}" width="10" height="3" fill="{color}"/>'
                f'<text class="legend" x="{x + 14:.1f}" y="{self.top - 10:.1f}">{_e(label)}</text>'
            )


def _range(*series: Sequence[tuple[float, float]], zero: bool = True) -> tuple[float, float]:
    vals = [v for s in series for _, v in s]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if zero:
        lo = min(lo, 0.0)
    if hi == lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    pad = (hi - lo) * 0.05
    if zero and lo == 0:
        return lo, hi + pad
    # never pad below zero a series that never goes negative (prices, heights)
    return (max(0.0, lo - pad) if lo >= 0 else lo - pad), hi + pad


def _liquidation_panel(tl: Timeline, panel: Callable[[str, float, float], _Panel]) -> None:
    """Liquidations over time: executed up, blocked down (stacks with markets only)."""
    n = int(tl.end_s / tl.bucket_s) + 1
    ex = [0] * n
    bl = [0] * n
    for pt in tl.liquidations:
        ex[min(n - 1, int(pt.t_s / tl.bucket_s))] += 1
    for pt in tl.blocked:
        bl[min(n - 1, int(pt.t_s / tl.bucket_s))] += 1
    peak = max([*ex, *bl, 1])
    p = panel("liquidations (up) and blocked attempts (down) per bucket", -peak, peak)
    for i in range(n):
        for count, color, sign in ((ex[i], "#c62828", 1), (bl[i], "#2e7d32", -1)):
            if count:
                x0 = p.x(i * tl.bucket_s)
                w = max(1.5, p.x((i + 1) * tl.bucket_s) - x0)
                y0, y1 = p.y(0), p.y(sign * count)
                p.parts.append(
                    f'<rect x="{x0:.1f}" y="{min(y0, y1):.1f}" width="{w:.1f}" height="{abs(y1 - y0):.1f}" '
                    f'fill="{color}"><title>{count} at {i * tl.bucket_s:.1f}s</title></rect>'
                )


def render_timeline_svg(tl: Timeline) -> str:
    panels: list[_Panel] = []
    top = float(_TOP)

    def panel(title: str, lo: float, hi: float) -> _Panel:
        nonlocal top
        p = _Panel(title, top, tl.end_s, lo, hi)
        p.frame()
        panels.append(p)
        top += _PANEL_H + _GAP + 10
        return p

    p = panel("throughput (operations/s)", *_range(tl.throughput))
    p.line(tl.throughput, _COLORS[0], "ops/s")
    p = panel("error rate (share of info outcomes)", 0.0, max(0.05, _range(tl.error_rate)[1]))
    p.line(tl.error_rate, "#c62828", "error rate")
    p = panel("latency of ok operations (ms)", *_range(tl.latency_p50, tl.latency_p99))
    p.line(tl.latency_p50, _COLORS[0], "p50")
    p.line(tl.latency_p99, _COLORS[1], "p99")
    p.legend([("p50", _COLORS[0]), ("p99", _COLORS[1])])
    liquidated = {x.market for x in tl.liquidations if x.market is not None}
    for m in sorted(set(tl.oracle) | set(tl.used) | liquidated):
        liq = [x for x in tl.liquidations if x.market == m]
        blk = [x for x in tl.blocked if x.market == m]
        price_pts = [(x.t_s, float(x.price)) for x in liq + blk if x.price is not None]
        lo, hi = _range(tl.oracle.get(m, []), tl.used.get(m, []), price_pts, zero=False)
        p = panel(f"{m}: oracle reference vs price used", lo, hi)
        p.line(tl.oracle.get(m, []), _COLORS[2], f"{m} oracle reference")
        p.line(tl.used.get(m, []), _COLORS[3], f"{m} index used", dash="4 2")
        p.marks(liq, "#c62828", hollow=False)
        p.marks(blk, "#2e7d32", hollow=True)
        p.legend(
            [
                ("oracle", _COLORS[2]),
                ("used", _COLORS[3]),
                ("liquidation", "#c62828"),
                ("blocked", "#2e7d32"),
            ]
        )
    if tl.oracle or tl.used or tl.liquidations or tl.blocked:  # an exchange's record
        _liquidation_panel(tl, panel)
    if tl.rate_target:  # an open-loop load
        p = panel("open-loop rate (steps/s)", *_range(tl.rate_target, tl.rate_achieved))
        p.line(tl.rate_target, _COLORS[0], "target", dash="4 2")
        p.line(tl.rate_achieved, _COLORS[1], "achieved")
        p.legend([("target", _COLORS[0]), ("achieved", _COLORS[1])])
    lo, hi = _range(tl.height, zero=False)
    p = panel("block height", max(0.0, lo), hi)
    p.line(tl.height, _COLORS[4], "block height")

    height = top + 10
    bottom = top - _GAP - 10
    x_axis: list[str] = []
    step = _nice_step(tl.end_s)
    t = 0.0
    while t <= tl.end_s + 1e-9:
        x = panels[0].x(t)
        x_axis.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{bottom:.1f}"/>'
            f'<text x="{x:.1f}" y="{bottom + 14:.1f}" text-anchor="middle">{t:g}s</text>'
        )
        t += step
    bands: list[str] = []
    for b in tl.bands:
        x0 = panels[0].x(b.start_s)
        x1 = max(x0 + 2.0, panels[0].x(b.end_s))
        tip = f"{b.label} ({b.name} -> {b.target}): {b.start_s}s - {b.end_s}s"
        bands.append(
            f'<rect class="fault-band" data-fault-id="{_e(b.fault_id)}" x="{x0:.1f}" y="{_TOP - 18}" '
            f'width="{x1 - x0:.1f}" height="{bottom - _TOP + 18:.1f}"><title>{_e(tip)}</title></rect>'
            f'<text class="fault-label" x="{x0 + 2:.1f}" y="{_TOP - 22}">{_e(b.label)}</text>'
        )
    body = "".join(x_axis) + "".join(part for pn in panels for part in pn.parts)
    return (
        f'<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height:.0f}" '
        f'viewBox="0 0 {_W} {height:.0f}" role="img" aria-label="run timeline">'
        f'{body}<g id="fault-bands">{"".join(bands)}</g></svg>'
    )


def _nice_step(span: float) -> float:
    raw = span / 10
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def _status_badge(status: str) -> str:
    cls = {"pass": "pass", "fail": "fail", "error": "error"}.get(status, "na")
    return f'<span class="badge {cls}">{_e(status)}</span>'


def _table(headers: Sequence[str], rows: Sequence[str], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_html(outcome: CheckOutcome, tl: Timeline) -> str:
    exp = outcome.expectation
    verdict_cls = "pass" if exp.met else ("error" if exp.harness_error else "fail")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>l2chaos: {_e(outcome.scenario)}"
        + (f" ({_e(outcome.profile)})" if outcome.profile else "")
        + "</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>{_e(outcome.scenario)} <span class="badge {verdict_cls}" id="verdict">'
        f"{_e(outcome.verdict)}</span></h1>",
        f'<div class="meta">profile <b>{_e(outcome.profile or "-")}</b> · backend {_e(outcome.backend)} · '
        f"seed {_e(outcome.seed)} · run {_e(outcome.run_id)} · exit code "
        f'<b id="exit-code">{outcome.exit_code}</b></div>',
        f"<p>expectation: <b>{_e(exp.text)}</b>: {'met' if exp.met else 'not met'}</p>",
    ]
    if exp.problems or exp.harness_error:
        items = [
            *exp.problems,
            *([f"harness error: {exp.harness_error}"] if exp.harness_error else []),
        ]
        parts.append(
            '<ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in items) + "</ul>"
        )
    if outcome.description:
        parts.append(f'<p class="meta">{_e(outcome.description)}</p>')

    parts.append('<h2>Timeline</h2><section id="timeline">')
    parts.append(render_timeline_svg(tl))
    parts.append(
        f'<p class="meta">{len(tl.bands)} fault window(s) shaded; time in seconds since the start '
        "of the run; hover for details.</p></section>"
    )

    rows = []
    for v in outcome.all_verdicts():
        counts = ", ".join(f"{k} {n}" for k, n in v.checked.items())
        role = exp.roles.get(v.name, "")
        ok = exp.satisfied.get(v.name)
        rows.append(
            f'<tr class="invariant" data-name="{_e(v.name)}"><td>{_e(v.name)}</td><td>{_status_badge(v.status)}</td>'
            f'<td>{_e(counts)}</td><td class="num">{v.total_violations}</td><td>{_e(role)}'
            f"{'' if ok is None else (' ✔' if ok else ' ✘')}</td><td>{_e(v.reason)}</td>"
            f'<td class="num">{v.seconds:.2f}s</td></tr>'
        )
    parts.append("<h2>Invariants</h2>")
    parts.append(
        _table(
            ["invariant", "status", "checked", "violations", "expectation", "note", "time"],
            rows,
            "invariants",
        )
    )

    vrows = []
    omitted = 0
    for v in outcome.all_verdicts():
        omitted += v.total_violations - len(v.violations)
        for viol in v.violations:
            ev = viol.evidence
            when = ev.get("host_ts_ns") or ev.get("t_ns") or ev.get("start_ns")
            when_s = (
                f"{(when - outcome.t0_ns) / 1e9:.3f}s"
                if isinstance(when, int) and outcome.t0_ns is not None
                else ""
            )
            vrows.append(
                f'<tr class="violation" data-invariant="{_e(v.name)}"><td>{_e(v.name)}</td>'
                f"<td>{_e(viol.message)}</td><td>{_e(ev.get('block'))}</td><td>{_e(when_s)}</td>"
                f"<td>{_e(ev.get('account'))}</td><td><code>{_e(_short(ev.get('expected')))}</code></td>"
                f"<td><code>{_e(_short(ev.get('seen')))}</code></td>"
                f"<td><details><summary>evidence</summary><pre>{_e(json.dumps(ev, indent=1, sort_keys=True, default=str))}</pre></details></td></tr>"
            )
    total_viol = sum(v.total_violations for v in outcome.all_verdicts())
    parts.append(f'<h2>Violations <span class="meta">({total_viol})</span></h2>')
    if vrows:
        parts.append(
            _table(
                ["invariant", "what", "block", "time", "account", "expected", "seen", "evidence"],
                vrows,
                "violations",
            )
        )
        if omitted > 0:
            parts.append(
                f'<p class="meta" id="violations-omitted">{omitted} more violation(s) counted '
                "but not kept as evidence (see result.json for the counts).</p>"
            )
    else:
        parts.append(_table(["invariant", "what"], [], "violations"))
        parts.append('<p class="meta">No violations.</p>')

    frows = []
    for f in outcome.faults:
        fr = f.record
        frows.append(
            f'<tr class="fault"><td>{_e(fr.label)}</td><td>{_e(fr.name)}</td><td>{_e(fr.target)}</td>'
            f'<td class="num">{_e(_s(f.scheduled_at))}</td><td class="num">{_e(_s(f.injected_at))}</td>'
            f'<td class="num">{_e(_s(f.healed_at))}</td>'
            f'<td class="num">{_e(_ms(fr.lateness_ms))}</td>'
            f"<td>{_e(_trigger(fr))}</td>"
            f'<td class="num">{_e(_blocks(fr))}</td>'
            f'<td class="num">{_e(_s(f.recovery_s))}</td><td>{_e(f.recovery_status or "")}'
            f"{_e('; '.join([*fr.errors, *([fr.missed] if fr.missed else [])]))}</td></tr>"
        )
    parts.append("<h2>Faults and recovery times</h2>")
    parts.append(
        _table(
            [
                "fault",
                "kind",
                "target",
                "scheduled",
                "injected",
                "healed",
                "lateness",
                "trigger",
                "block (late)",
                "recovery",
                "status",
            ],
            frows,
            "recovery",
        )
    )

    windows = outcome.windows
    keys: list[str] = []
    for window_counts in [*(w.counts for w in windows), outcome.run_counts]:
        for k in window_counts:
            if k not in keys:
                keys.append(k)
    crows = []
    for w in windows:
        c = w.counts
        crows.append(
            f"<tr><td>{_e(w.label)}</td>"
            + "".join(f'<td class="num">{_e(c.get(k, ""))}</td>' for k in keys)
            + "</tr>"
        )
    run_c = outcome.run_counts
    crows.append(
        "<tr><td><b>whole run</b></td>"
        + "".join(f'<td class="num">{_e(run_c.get(k, ""))}</td>' for k in keys)
        + "</tr>"
    )
    parts.append("<h2>Coverage per fault window</h2>")
    parts.append(_table(["window", *keys], crows, "coverage"))

    if outcome.sometimes is not None:
        srows = []
        for r in map(as_object, as_list(outcome.sometimes.details.get("rules"))):
            state = (
                "not for this profile"
                if not r.get("applies")
                else ("holds" if r.get("ok") else "does not hold")
            )
            srows.append(
                f"<tr><td>{_e(r.get('rule'))}</td><td>{_e(r.get('seen'))}</td><td>{_e(state)}</td></tr>"
            )
        parts.append("<h2>Sometimes</h2>")
        parts.append(_table(["rule", "seen", "result"], srows, "sometimes"))

    parts.append(
        f'<p class="meta">generated by l2chaos from {_e(outcome.run_dir)}; checks took '
        f"{outcome.seconds:.2f}s.</p></body></html>"
    )
    return "\n".join(parts)


def _ms(x: Any) -> str:
    return "" if x is None else f"{float(x):.1f}ms"


def _s(x: Any) -> str:
    return "" if x is None else f"{float(x):.2f}s"


def _short(x: Any, limit: int = 120) -> str:
    if x is None:
        return ""
    text = x if isinstance(x, str) else json.dumps(x, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_html(run_dir: Path, outcome: CheckOutcome, record: RunRecord | None = None) -> Path:
    rec = record if record is not None else RunRecord(run_dir)
    tl = build_timeline(rec, outcome.t0_ns, outcome.end_ns)
    path = run_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_html(outcome, tl), encoding="utf-8")
    tmp.replace(path)
    return path


def _trigger(r: FaultRecord) -> str:
    trig = r.trigger or {}
    return str(trig.get("text") or "")


def _blocks(r: FaultRecord) -> str:
    if r.block is None:
        return ""
    late = r.lateness_blocks
    return str(r.block) + ("" if late is None else f" ({late:+d})")
