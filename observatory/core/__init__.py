"""Plumbing every stage uses: typed errors, atomic files, stage timing, dask."""
