"""A local stand-in for the Azure Functions host (Core Tools cannot be installed here).

Not deployed (see .funcignore). It runs `function_app.py` the way the host does, reading the
registered functions from the app object itself.
"""
