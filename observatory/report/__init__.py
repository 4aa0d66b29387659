"""What a run shows to people who do not open a GIS: maps, charts, the report.

- :mod:`observatory.report.render`: :func:`~observatory.report.render.render_maps`,
  the entry point of the pictures (one PNG map per system, the PDF atlas, the
  charts), drawn on every core (:mod:`observatory.report.helper` draws a share
  in a process of its own); :mod:`observatory.report.maps` the figure of one map;
- :mod:`observatory.report.mapdata`: the systems, flow classes, French names
  and numbers, titles and sources line the pictures share (no drawing);
- :mod:`observatory.report.mapdraw`: the drawing parts of a map (polygons, half
  arrows, labels, scale bar, north arrow); :mod:`observatory.report.maplegend`
  its legend; :mod:`observatory.report.mapframe` the page around maps and
  charts (header, synthetic notice, sources, the atlas's first page, PNG bytes);
- :mod:`observatory.report.charts`: the bar charts of the key indicators;
- ``observatory.report.html*``: the self-contained ``report.html``.

Everything here is pure: functions of the run's layers, manifest and config
sections that return file contents; writing them is :mod:`observatory.runs`'s
job. Figures are :class:`matplotlib.figure.Figure` drawn by the Agg canvas,
never through ``pyplot``'s global state.
"""
