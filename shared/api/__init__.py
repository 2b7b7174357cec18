"""The HTTP management API (Azure Scheduler 2016-03-01 compatible), a FastAPI app."""
