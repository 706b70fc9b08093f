"""People's rights over their data: privacy requests, the screen at the landing door, and erasure by lineage."""
