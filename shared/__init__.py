"""The job scheduler's domain package: models, recurrence, store, dispatcher, executor, API.

Everything here is importable and testable without the Azure Functions host; only
`function_app.py` wires it to triggers.
"""
