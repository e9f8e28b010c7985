"""RadDiff's localize service: image grids, zoom crops and one box per finding."""
