"""QGIS side files of the layers: a default style (``.qml``) with French field aliases."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from observatory.layers.schemas import Field


def qgis_aliases(fields: list[Field]) -> str:
    """Return a QGIS style (``.qml``) holding French field aliases.

    QGIS loads ``<layer>.qml`` next to a file-based layer as its default style, so
    the attribute table shows the French labels while field names stay stable.
    """
    aliases = "\n".join(
        f'    <alias field={quoteattr(f.name)} index="{i}" name={quoteattr(f.alias_fr)}/>'
        for i, f in enumerate(fields)
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.34.0" styleCategories="Fields">\n'
        f"  <aliases>\n{aliases}\n  </aliases>\n"
        "</qgis>\n"
    )
