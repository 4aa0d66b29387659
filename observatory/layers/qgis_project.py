"""The QGIS project of a run (``observatory.qgz``), written without QGIS.

It sits in the run folder beside ``observatory.gpkg`` and reads it by a relative
path (``./observatory.gpkg|layername=...``): the folder can be moved or shared.
For QGIS 3.22 LTR onwards (:data:`observatory.layers.qgis.QGIS_MIN_VERSION`):

- one group per métropole (per pole overseas, in its territory's CRS), named by
  it: its flows, outline and EPCI, top first, filtered on ``metropole_code`` in
  the layer source (``|subset=...``: ``setSubsetString`` on a second layer of a
  GeoPackage fails in QGIS 3.22); the first group shown, the others hidden;
- each layer with its full style (renderer, labels, aliases, value maps) copied
  from its QML, as the GeoPackage's default styles show it;
- a map theme per métropole (its group's layers), which the atlas of the print
  layout (:mod:`observatory.layers.qgis_layout`) follows page by page;
- a hidden group "Flux dominants (Nystuen et Dacey)" with each territory's
  ``dominant_flows`` (all its EPCI: a dominant flow belongs to no system);
- a hidden group "Toutes les métropoles" with each territory's unfiltered
  métropoles layer (the atlas's coverage), the flow matrix as a table;
- the map canvas on the first system.
"""

from __future__ import annotations

import html
import io
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from pyexpat import ExpatError, ParserCreate
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from observatory.core.errors import OutputError
from observatory.geography import MAINLAND, TERRITORY_EPSG, TERRITORY_NAMES
from observatory.layers.captions import (
    census_text,
    input_role,
    input_vintages,
    is_synthetic,
)
from observatory.layers.qgis import QML_VERSION
from observatory.layers.qgis_layout import (
    Extent,
    PageTexts,
    PrintedSystem,
    atlas_layout,
    crs_element,
    tree_group,
    tree_layer,
)
from observatory.layers.qgis_maplayer import (
    LayerStyle,
    LayerStyles,
    dominant_group,
    layer_stem,
    map_layer,
    source,
)

#: File name of the project in a run folder, and of the project inside it.
PROJECT_NAME, PROJECT_ENTRY = "observatory.qgz", "observatory.qgs"


#: The layers of a system's group, top first (drawn last), with their names.
GROUP_LAYERS = (
    ("flows", "Flux domicile-travail (actifs occupés)"),
    ("metropoles", "Contour de la métropole"),
    ("epci_indicators", "EPCI selon leur lien à la métropole"),
)


#: Name of the group holding the unfiltered métropoles (the atlas's coverage).
OVERVIEW_GROUP = "Toutes les métropoles"


#: Name of the flow matrix in the layer tree.
MATRIX_NAME = "Matrice des flux entre EPCI (tableau)"


#: What a page says when the run's flows are synthetic.
SYNTHETIC_NOTICE = (
    "DONNÉES SYNTHÉTIQUES : les flux de ce run sont fictifs (démonstration), "
    "ils ne décrivent pas des déplacements réels. Ne pas les citer."
)


#: Share of a system's extent added on each side of its map.
EXTENT_MARGIN = 0.04


#: Depth of the ``<maplayer>`` elements in a project: ``qgis/projectlayers``.
MAPLAYER_DEPTH = 2


#: A ``<datasource>`` element of a well-formed project: group 1 is its text when
#: plain, as :func:`project_document` writes it, else empty (no source). The
#: project has no comment or CDATA section, where the pattern could match text.
DATASOURCE = re.compile(rb"<datasource(?:>([^<]*)</datasource>|[\s/>])")


@dataclass(frozen=True, slots=True)
class SystemGroup:
    """One métropole (or pole) as its group shows it.

    Attributes
    ----------
    territory
        Territory code (``FXX``, ``REU``...); its layers are in its CRS.
    code, name
        SIREN and name of the métropole.
    extent
        The system's EPCI, in the territory's CRS, with a margin.
    layers
        Layer ids of the group, top first, by layer name (``flows``...).
    """

    territory: str
    code: str
    name: str
    extent: Extent
    layers: dict[str, str]


def _row_bounds(frame: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return a layer's métropole codes and its rows' bounds (NaN when empty)."""
    codes = frame["metropole_code"].to_numpy(dtype=object, na_value="")  # no code
    return codes, shapely.bounds(frame.geometry.to_numpy())


def _extent(layers: Sequence[tuple[np.ndarray, np.ndarray]], code: str) -> Extent:
    """Return the bounds of a system's rows, with a margin.

    ``layers`` holds each layer's :func:`_row_bounds`; missing and empty
    geometries, without bounds, are left out.
    """
    rows = np.concatenate([bounds[codes == code] for codes, bounds in layers])
    rows = rows[~np.isnan(rows).any(axis=1)]
    if not len(rows):
        return Extent(0.0, 0.0, 1.0, 1.0)
    xmin, ymin = (float(v) for v in rows[:, :2].min(axis=0))
    xmax, ymax = (float(v) for v in rows[:, 2:].max(axis=0))
    margin = EXTENT_MARGIN * max(xmax - xmin, ymax - ymin, 1.0)
    return Extent(xmin - margin, ymin - margin, xmax + margin, ymax + margin)


def system_groups(
    layers_by_territory: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
) -> list[SystemGroup]:
    """Return the groups of the project: mainland first, each territory's by name."""
    order = sorted(layers_by_territory, key=list(TERRITORY_EPSG).index)  # FXX first
    groups = []
    for territory in order:
        layers = layers_by_territory[territory]
        if "metropoles" not in layers:
            continue
        shown = [layer for layer, _ in GROUP_LAYERS if layer in layers]
        metropoles = layers["metropoles"].sort_values("metropole_name")
        spatial = [
            _row_bounds(layers[n])
            for n in ("epci_indicators", "metropoles")
            if n in layers
        ]
        for code, name in zip(
            metropoles["metropole_code"], metropoles["metropole_name"], strict=True
        ):
            ids = {layer: f"{layer_stem(layer, territory)}_{code}" for layer in shown}
            extent = _extent(spatial, str(code))
            groups.append(SystemGroup(territory, str(code), str(name), extent, ids))
    return groups


def shown_rules(style: ET.Element | None) -> tuple[tuple[int, str], ...]:
    """Return the legend entries of a rule-based style that are ticked: (index, key).

    ``style`` is the parsed QML document. Entries are the rules in depth-first
    order; a rule is hidden with its unticked ancestor. Empty when every rule is
    ticked (or there is no rule).
    """
    rules = style.find("renderer-v2/rules") if style is not None else None
    if rules is None:
        return ()
    hidden: set[ET.Element] = set()
    for rule in rules.iter("rule"):
        if rule.get("checkstate") == "0":
            hidden.update(rule.iter("rule"))
    order = list(rules.iter("rule"))
    shown = tuple(
        (i, rule.get("key", "")) for i, rule in enumerate(order) if rule not in hidden
    )
    return shown if len(shown) < len(order) else ()


def layer_title(layer: str, territory: str) -> str:
    """Return the French name of a system's layer (``Contour du pôle`` overseas)."""
    title = dict(GROUP_LAYERS)[layer]
    if territory == MAINLAND:
        return title
    return title.replace("de la métropole", "du pôle").replace(
        "à la métropole", "au pôle"
    )


def group_name(group: SystemGroup) -> str:
    """Return a group's name: the métropole's, with its territory overseas."""
    if group.territory == MAINLAND:
        return group.name
    return f"{group.name} ({TERRITORY_NAMES.get(group.territory, group.territory)})"


def sources_text(manifest: Mapping[str, Any]) -> str:
    """Return the sources of the maps, from the manifest's inputs.

    INSEE's census (base flux and its vintage, the previous vintage and the
    detailed file when used), INSEE's EPCI composition and IGN's ADMIN EXPRESS
    with the run's geography, and the program and run that made the data.
    """
    inputs: Sequence[Mapping[str, Any]] = manifest.get("inputs", [])
    roles = {input_role(r) for r in inputs}
    synthetic = " (SYNTHÉTIQUES)" if is_synthetic(manifest) else ""
    flux = input_vintages(inputs, "flows") or str(manifest.get("flows_vintage") or "")
    parts = [f"INSEE, RP {flux}, base flux domicile-travail{synthetic}"]
    if "flows_previous" in roles:
        previous = input_vintages(inputs, "flows_previous")
        parts.append(f"RP {previous} (comparaison){synthetic}")
    if "fd_mobpro" in roles:
        read = manifest.get("fd_mobpro", {}).get("read", {})
        fd = input_vintages(inputs, "fd_mobpro") or str(read.get("vintage") or "")
        note = " (SYNTHÉTIQUE)" if synthetic else ""
        parts.append(f"fichier détail MOBPRO RP {fd}{note}".replace("RP  (", "("))
    geography = manifest.get("geography")
    on = f" au 1er janvier {geography}" if geography else ""
    if "epci_composition" in roles:
        parts.append(f"INSEE, composition communale des EPCI{on}")
    if "communes" in roles:
        parts.append(f"IGN, ADMIN EXPRESS (communes{on})")
    if "commune_passage" in roles:
        parts.append("INSEE, COG (passage des codes communes)")
    made = "Traitement : observatory"
    version, run = manifest.get("package", {}).get("version"), manifest.get("run_id")
    made += f" {version}" if version else ""
    made += f", exécution {run}" if run else ""
    return f"Sources : {' ; '.join(parts)}. {made}."


def _capitalised(text: str) -> str:
    # str.capitalize would lower "EPCI".
    return text[:1].upper() + text[1:]


def _percent(column: str) -> str:
    return f"[% coalesce(format_number(100 * \"{column}\", 1, 'fr') || '\u00a0%', 'n.d.') %]"


def _count(column: str) -> str:
    return f"[% coalesce(format_number(\"{column}\", 0, 'fr'), 'n.d.') %]"


def page_texts(territory: str, manifest: Mapping[str, Any]) -> PageTexts:
    """Return what the atlas pages of a territory's systems say."""
    mainland = territory == MAINLAND
    place = "" if mainland else f" ({TERRITORY_NAMES.get(territory, territory)})"
    pole, of, to = ("la métropole", "de la métropole", "à la métropole")
    if not mainland:
        pole, of, to = ("le pôle", "du pôle", "au pôle")
    share = f"Part des actifs occupés qui travaillent dans {pole} :"
    figures = "\n".join(
        [
            f"Actifs occupés résidant dans {pole} : {_count('employed_residents')}",
            f"Emplois dans {pole} : {_count('jobs')}",
            share,
            f"   – parmi ceux {of} : {_percent('self_containment_share')}",
            "   – parmi ceux de la 1re couronne : "
            + _percent("dependence_share_crown1"),
            "   – parmi ceux de la 2e couronne : "
            + _percent("dependence_share_crown2"),
            'EPCI : [% "n_epci_crown1" %] en 1re couronne, '
            '[% "n_epci_crown2" %] en 2e couronne',
        ]
    )
    page = " Page [% @atlas_featurenumber %]/[% @atlas_totalfeatures %]."
    quoted = "'" + place.replace("'", "''") + "'"  # a QGIS string literal
    return PageTexts(
        layout="Atlas des métropoles" if mainland else f"Atlas des pôles{place}",
        title=f'[% "metropole_name" %]{place}\u00a0: l’aire d’influence domicile-travail',
        subtitle=f"{_capitalised(census_text(manifest))}. EPCI classés selon leur lien {to}, "
        "navettes des actifs occupés entre les EPCI du système.",
        notice=SYNTHETIC_NOTICE if is_synthetic(manifest) else None,
        figures=figures,
        sources=sources_text(manifest) + page,
        theme='"metropole_name"' + (" || " + quoted if place else ""),
    )


def _layers_and_tree(
    gpkg_name: str,
    styles: LayerStyles,
    groups: Sequence[SystemGroup],
    dominant: Sequence[str] = (),
) -> tuple[list[ET.Element], ET.Element, dict[str, tuple[str, str, str]]]:
    """Return the map layers, the layer tree and the atlas coverage layers.

    The coverage layers are the unfiltered métropoles layers, by territory:
    (layer id, name, source). ``dominant`` lists the territories with a
    ``dominant_flows`` layer, put in their own group.
    """
    maplayers: list[ET.Element] = []
    root = ET.Element("layer-tree-group")
    ET.SubElement(root, "customproperties")
    for index, group in enumerate(groups):
        node = tree_group(group_name(group), checked=index == 0, expanded=index == 0)
        epsg = TERRITORY_EPSG[group.territory]
        for layer, layer_id in group.layers.items():
            stem = layer_stem(layer, group.territory)
            uri = source(gpkg_name, stem, group.code)
            title = layer_title(layer, group.territory)
            style = styles.style(stem, layer)
            maplayers.append(map_layer(layer_id, title, uri, layer, epsg, style))
            node.append(tree_layer(layer_id, title, uri, checked=True))
        root.append(node)
    if dominant:
        dominant_layers, dominant_node = dominant_group(gpkg_name, styles, dominant)
        maplayers += dominant_layers
        root.append(dominant_node)
    overview = tree_group(OVERVIEW_GROUP, checked=False, expanded=False)
    coverage: dict[str, tuple[str, str, str]] = {}
    for territory in dict.fromkeys(g.territory for g in groups):
        stem = layer_stem("metropoles", territory)
        layer_id, uri = f"{stem}_all", source(gpkg_name, stem)
        title = "Métropoles" if territory == MAINLAND else "Pôles"
        if territory != MAINLAND:
            title += f" ({TERRITORY_NAMES.get(territory, territory)})"
        style = styles.style(stem, "metropoles")
        epsg = TERRITORY_EPSG[territory]
        maplayers.append(map_layer(layer_id, title, uri, "metropoles", epsg, style))
        overview.append(tree_layer(layer_id, title, uri, checked=True))
        coverage[territory] = (layer_id, title, uri)
    root.append(overview)
    uri = source(gpkg_name, "flow_matrix")
    style = styles.style("flow_matrix", "flow_matrix")
    maplayers.append(
        map_layer("flow_matrix", MATRIX_NAME, uri, "flow_matrix", None, style)
    )
    root.append(tree_layer("flow_matrix", MATRIX_NAME, uri, checked=True))
    return maplayers, root, coverage


def map_themes(
    groups: Sequence[SystemGroup], shown: Mapping[str, Sequence[tuple[int, str]]]
) -> ET.Element:
    """Return one map theme per system, named as its group: its layers shown.

    ``shown`` gives the ticked rules of layers with unticked ones (by layer id):
    a theme that does not list them draws every rule.
    """
    presets = ET.Element("visibility-presets")
    for group in groups:
        name, info = group_name(group), {"expanded": "1", "style": "default"}
        preset = ET.SubElement(presets, "visibility-preset", {"name": name})
        preset.attrib |= {"has-expanded-info": "1", "has-checked-group-info": "1"}
        for layer_id in group.layers.values():
            ET.SubElement(preset, "layer", {"id": layer_id, "visible": "1", **info})
            if shown.get(layer_id):
                nodes = ET.SubElement(preset, "checked-legend-nodes", {"id": layer_id})
                for _, key in shown[layer_id]:
                    ET.SubElement(nodes, "checked-legend-node", {"id": key})
        for kind in ("checked", "expanded"):
            nodes = ET.SubElement(preset, f"{kind}-group-nodes")
            ET.SubElement(nodes, f"{kind}-group-node", {"id": name})
    return presets


def _canvas(extent: Extent, epsg: int) -> list[ET.Element]:
    """Return the map canvas and the project's default view, both on ``extent``."""
    canvas = ET.Element(
        "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"}
    )
    ET.SubElement(canvas, "units").text = "meters"
    box = ET.SubElement(canvas, "extent")
    for key, value in extent.bounds().items():
        ET.SubElement(box, key).text = repr(value)
    ET.SubElement(canvas, "rotation").text = "0"
    canvas.append(crs_element(epsg, "destinationsrs"))
    view = ET.Element("ProjectViewSettings", {"UseProjectScales": "0", "rotation": "0"})
    ET.SubElement(view, "Scales")
    default = ET.SubElement(
        view, "DefaultViewExtent", {k: repr(v) for k, v in extent.bounds().items()}
    )
    default.extend(crs_element(epsg, "crs"))
    return [canvas, view]


def _properties() -> ET.Element:
    """Return the project properties: relative paths, French measurement units."""
    properties = ET.Element("properties")
    paths = ET.SubElement(properties, "Paths")
    ET.SubElement(paths, "Absolute", {"type": "bool"}).text = "false"
    srs = ET.SubElement(properties, "SpatialRefSys")  # else the project CRS is ignored
    ET.SubElement(srs, "ProjectionsEnabled", {"type": "int"}).text = "1"
    measure = ET.SubElement(properties, "Measurement")
    ET.SubElement(measure, "DistanceUnits", {"type": "QString"}).text = "km"
    ET.SubElement(measure, "AreaUnits", {"type": "QString"}).text = "km2"
    return properties


def project_crs(groups: Sequence[SystemGroup]) -> int:
    """Return the project's CRS: the first group's, Lambert-93 with the mainland.

    The mainland's groups come first (:func:`system_groups`).
    """
    return TERRITORY_EPSG[groups[0].territory if groups else MAINLAND]


def project_document(
    gpkg_name: str,
    layers_by_territory: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    styles: Mapping[str, str],
    manifest: Mapping[str, Any],
) -> str:
    """Return the text of the project (``.qgs``); see :func:`qgis_project`."""
    groups = system_groups(layers_by_territory)
    epsg = project_crs(groups)
    run = manifest.get("config", {}).get("content", {}).get("run", {})
    title = f"Observatoire des aires métropolitaines : {run.get('name', '')}"
    root = ET.Element("qgis", {"version": QML_VERSION, "projectname": title})
    ET.SubElement(root, "homePath", {"path": ""})
    ET.SubElement(root, "title").text = title
    root.append(crs_element(epsg, "projectCrs"))
    territories = sorted(layers_by_territory, key=list(TERRITORY_EPSG).index)
    dominant = [t for t in territories if "dominant_flows" in layers_by_territory[t]]
    parsed = LayerStyles(styles)  # each distinct style parsed once
    maplayers, tree, coverage = _layers_and_tree(gpkg_name, parsed, groups, dominant)
    root.append(tree)
    if groups:
        root.extend(_canvas(groups[0].extent, epsg))  # in the project's CRS
    projectlayers = ET.SubElement(root, "projectlayers")
    projectlayers.extend(maplayers)
    order = ET.SubElement(root, "layerorder")
    for maplayer in maplayers:
        ET.SubElement(order, "layer", {"id": maplayer.findtext("id", "")})
    root.append(_properties())
    rules: dict[LayerStyle | None, tuple[tuple[int, str], ...]] = {}
    shown = {}
    for g in groups:
        for layer, layer_id in g.layers.items():
            style = parsed.style(layer_stem(layer, g.territory), layer)
            if style not in rules:
                rules[style] = shown_rules(None if style is None else style.root)
            shown[layer_id] = rules[style]
    root.append(map_themes(groups, shown))
    printed = [
        PrintedSystem(
            g.territory,
            g.code,
            group_name(g),
            g.extent,
            tuple((i, layer_title(n, g.territory)) for n, i in g.layers.items()),
            {i: tuple(n for n, _ in shown[i]) for i in g.layers.values() if shown[i]},
        )
        for g in groups
    ]
    layouts = ET.SubElement(root, "Layouts")
    for territory in coverage:
        mine = [p for p in printed if p.territory == territory]
        layouts.append(
            atlas_layout(page_texts(territory, manifest), mine, coverage[territory])
        )
    ET.indent(root, space=" ")
    body = parsed.embed(ET.tostring(root, encoding="unicode"), MAPLAYER_DEPTH)
    return f"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n{body}\n"


def qgis_project(
    gpkg_name: str,
    layers_by_territory: Mapping[str, Mapping[str, gpd.GeoDataFrame]],
    styles: Mapping[str, str],
    manifest: Mapping[str, Any],
) -> bytes:
    """Return the run's QGIS project, ``observatory.qgz``, as bytes.

    Parameters
    ----------
    gpkg_name
        File name of the run's GeoPackage in the same folder
        (:data:`observatory.layers.geopackage.GEOPACKAGE_NAME`); the project
        reads it by this relative path.
    layers_by_territory
        The run's map layers by territory, then by layer name
        (``epci_indicators``, ``flows``, ``metropoles``): the GeoPackage's tables
        are named by :func:`observatory.layers.files.layer_stem`.
    styles
        QML text by layer name (:func:`observatory.layers.styles.layer_styles`)
        or by file stem; each layer of the project carries its style.
    manifest
        The run's manifest (``manifest.json``): census vintage, geography,
        inputs and whether the flows are synthetic, for the print layout.

    Returns
    -------
    bytes
        A zip holding ``observatory.qgs`` (the same bytes for the same inputs).
    """
    text = project_document(gpkg_name, layers_by_territory, styles, manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo(PROJECT_ENTRY, date_time=(2000, 1, 1, 0, 0, 0))
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, text.encode("utf-8"))
    return buffer.getvalue()


def validate_project(path: Path, gpkg_name: str, tables: Collection[str]) -> None:
    """Read a written project back: its layers read the GeoPackage's tables.

    Parameters
    ----------
    path
        The ``observatory.qgz`` written.
    gpkg_name
        File name of the GeoPackage beside it.
    tables
        The tables of the GeoPackage (file stems: ``flows``, ``flows_REU``...).

    Raises
    ------
    OutputError
        When the file is not a project, or a layer's source is not the
        GeoPackage by a relative path or names a table it does not hold.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            document = archive.read(PROJECT_ENTRY)  # its CRC checked
        # Well-formed XML, checked by expat alone: building the tree of the
        # 69 layers' styles would cost 80 ms (national run) for their sources.
        ParserCreate().Parse(document, True)
    except (OSError, KeyError, zipfile.BadZipFile, ExpatError) as exc:
        msg = f"{path}: unreadable QGIS project ({exc})"
        raise OutputError(msg, path=path) from exc
    problems = []
    for text in DATASOURCE.findall(document):
        # In a well-formed document, the entities of plain text are XML's.
        parts = html.unescape(text.decode("utf-8")).split("|")
        if parts[0] != f"./{gpkg_name}":
            problems.append(f"source {parts[0]!r} is not ./{gpkg_name}")
        table = parts[1].removeprefix("layername=") if len(parts) > 1 else ""
        if table not in tables:
            problems.append(f"layer {table!r} not in {gpkg_name}")
    if problems:
        msg = f"{path}: invalid QGIS project: {'; '.join(sorted(set(problems)))}"
        raise OutputError(msg, path=path)
