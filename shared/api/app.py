"""The FastAPI application factory. Routes carry the `/api` prefix because the Functions host
passes the full URL path (route prefix included) to an AsgiFunctionApp."""

from __future__ import annotations

from fastapi import FastAPI

from shared.api.errors import install_error_handlers
from shared.api.middleware import FrontDoor
from shared.api.routes import RuntimeProvider, build_router
from shared.runtime import current_runtime


def create_api(get_runtime: RuntimeProvider = current_runtime) -> FastAPI:
    api = FastAPI(
        title="Job scheduler",
        summary="Azure Scheduler (2016-03-01) compatible jobs on your own storage",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    api.state.get_runtime = get_runtime
    install_error_handlers(api)
    api.include_router(build_router())
    api.add_middleware(FrontDoor)
    return api
