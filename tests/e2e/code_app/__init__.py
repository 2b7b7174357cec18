"""A user's function app for the code-job end-to-end tests: function_app.py's app plus the
user's own handlers in jobs.py beside it."""
