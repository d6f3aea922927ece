"""People: communities, grids and micro-grids, volunteers, the roster import."""
