"""The app's HTTP functions under Azure Functions: one catch-all with function keys, and the
IoT Hub paths served anonymously so that their shared access signature decides.

All of them hand the request to the same ASGI app. The host matches routes in the order of the
function names (ordinal, ignoring case; devhost/routes.py cites why), first match wins: so the
IoT Hub functions are named to sort before the catch-all, or the catch-all would take their
paths and ask for a key.
"""

from __future__ import annotations

import azure.functions as func

CATCH_ALL_FUNCTION = "scheduler_api"
# (function name, route under the host's routePrefix); each name sorts before CATCH_ALL_FUNCTION.
IOT_HUB_FUNCTIONS = (
    ("iot_hub_devices", "devices/{*path}"),
    ("iot_hub_jobs", "jobs/v2/{*path}"),
    ("iot_hub_twins", "twins/{*path}"),
)
ALL_METHODS = [method.value for method in func.HttpMethod]
# The dashboard's page and assets: no secret in them, and a browser cannot send a key for a
# page it opens. Its data comes from the API, with the key (shared/api/dashboard_page.py).
DASHBOARD_FUNCTION = ("dashboard_page", "dashboard/{*path}")


def serve_dashboard_page(app: func.AsgiFunctionApp) -> None:
    """Add the anonymous function of the dashboard's page (GET only; it sorts before the
    catch-all)."""
    name, route = DASHBOARD_FUNCTION
    _add_anonymous_function(app, name, route, methods=["GET"])


def serve_iot_hub_paths(app: func.AsgiFunctionApp) -> None:
    """Add the anonymous IoT Hub functions to an app whose catch-all is CATCH_ALL_FUNCTION."""
    for name, route in IOT_HUB_FUNCTIONS:
        _add_anonymous_function(app, name, route)


def _add_anonymous_function(
    app: func.AsgiFunctionApp, name: str, route: str, methods: list[str] = ALL_METHODS
) -> None:
    middleware = app.middleware

    # The app has no lifespan handlers, so these need not run the ASGI startup the catch-all
    # runs on its first request.
    @app.function_name(name=name)
    @app.route(route=route, methods=methods, auth_level=func.AuthLevel.ANONYMOUS)
    async def handler(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        response: func.HttpResponse = await middleware.handle_async(req, context)
        return response
