"""The task board: tasks for grids, claims, checks and ratings, residents' wishes, hours."""
