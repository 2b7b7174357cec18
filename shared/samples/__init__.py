"""Handlers the app ships as samples; function_app.py registers them (they are not kinds)."""
