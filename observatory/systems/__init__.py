"""PURE: crowns, harmonisation, flows and indicators, modes, distances, classification."""
