"""The style sheet of the run report: inline, system fonts only, print-friendly."""

from __future__ import annotations

#: CSS of ``report.html`` (no external font, image nor import: the page opens offline).
REPORT_CSS = """
:root { --ink: #1f2328; --muted: #5a6270; --line: #d0d5dc; --head: #eef1f5;
  --accent: #1d2f6f; --warn-bg: #fff3cd; --warn-line: #c98a00; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0 auto; max-width: 1180px; padding: 1.5rem 2rem 3rem; color: var(--ink);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
    "Liberation Sans", Arial, sans-serif; line-height: 1.45; background: #fff; }
h1 { font-size: 1.9rem; margin: 0.2rem 0 0.4rem; color: var(--accent); line-height: 1.2; }
h2 { font-size: 1.5rem; margin: 2.5rem 0 0.8rem; padding-bottom: 0.3rem;
  border-bottom: 3px solid var(--accent); color: var(--accent); }
h2 small { font-size: 0.8rem; font-weight: normal; color: var(--muted); margin-left: 0.5rem; }
h3 { font-size: 1.15rem; margin: 1.8rem 0 0.6rem; }
h4 { font-size: 1rem; margin: 1.2rem 0 0.4rem; color: var(--muted); }
a { color: var(--accent); }
.kicker { text-transform: uppercase; letter-spacing: 0.06em; font-size: 0.8rem;
  color: var(--muted); margin: 0; }
.banner { background: var(--warn-bg); border: 2px solid var(--warn-line); border-radius: 6px;
  padding: 0.8rem 1rem; margin: 0 0 1.2rem; font-size: 1rem; }
.banner strong { display: block; font-size: 1.1rem; letter-spacing: 0.03em; }
.synthetic-note { background: var(--warn-bg); border-left: 4px solid var(--warn-line);
  padding: 0.3rem 0.7rem; font-size: 0.9rem; margin: 0 0 1rem; }
.note { color: var(--muted); font-size: 0.85rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1.2rem;
  margin: 0.8rem 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 0.4rem 0 0.6rem; font-size: 0.88rem;
  font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 0.3rem 0.45rem; vertical-align: top;
  text-align: left; }
th { background: var(--head); font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
th.num { text-align: right; }
tbody tr:nth-child(even) { background: #f8f9fb; }
td small { display: block; color: var(--muted); font-size: 0.78rem; }
table.index td:first-child { white-space: nowrap; }
table.epci td:first-child { min-width: 12em; }
table.sources td:last-child { overflow-wrap: anywhere; }
table.sources code { white-space: nowrap; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em;
  border: 1px solid #8c8c8c; vertical-align: -0.1em; }
.cls { display: inline-flex; align-items: flex-start; }
.cls .swatch { flex: none; margin-top: 0.2em; }
ul.classes { list-style: none; padding: 0; margin: 0.4rem 0 0.6rem; display: flex;
  flex-wrap: wrap; gap: 0.3rem 1.4rem; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 0.4rem 0 0.8rem; }
.card { flex: 1 1 12rem; border: 1px solid var(--line); border-radius: 6px;
  padding: 0.6rem 0.8rem; background: #f8f9fb; }
.card b { display: block; font-size: 1.35rem; color: var(--accent); white-space: nowrap; }
.card span { color: var(--muted); font-size: 0.85rem; }
figure { margin: 0.8rem 0 1.2rem; text-align: center; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.back { text-align: right; font-size: 0.85rem; }
ul.warnings li { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.82rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: 0.8rem;
  border-top: 1px solid var(--line); padding-top: 0.6rem; }
@media print {
  html { font-size: 10.5pt; }
  table { font-size: 7.5pt; }
  th, td { padding: 0.2rem 0.3rem; }
  body { max-width: none; padding: 0; }
  section.metropole, section.sources { break-before: page; }
  h2, h3, h4 { break-after: avoid; }
  tr, figure, .card, .banner { break-inside: avoid; }
  thead { display: table-header-group; }
  .back { display: none; }
  a { color: inherit; text-decoration: none; }
  .banner, .synthetic-note, th, .swatch, tbody tr:nth-child(even) {
    -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  figure img { max-height: 22cm; width: auto; }
}
@page { size: A4; margin: 1.5cm; }
"""
