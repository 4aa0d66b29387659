"""Land complementarity from rasters (issue 14): land cover, built-up, population.

Zonal statistics out of core (:mod:`~observatory.land.zonal`) on land-cover,
built-up and population rasters, and the land indicators of communes, EPCI and
crowns (:mod:`~observatory.land.indicators`, :mod:`~observatory.land.crowns`).
The entry point of a run is :func:`observatory.land.run.land_indicators`, given
:meth:`observatory.land.inputs.LandRasters.from_config`.
"""
