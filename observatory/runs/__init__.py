"""A run from end to end: the pipeline of named stages, the run folder, lock, state, refresh, status."""
