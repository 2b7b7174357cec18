"""Pydantic models of the Azure Scheduler 2016-03-01 JSON shapes, plus our extensions."""
