"""The output layers: their building, schemas and writers (GeoParquet, styles)."""
