"""The scheduling engine: its records (more of it moves here as the layout grows)."""
