"""Job collection operations. `router`'s paths are relative to a `.../jobCollections` prefix
and it is mounted on both (shared/api/app.py); `by_subscription` is ARM's list of a whole
subscription, which has no short form. Each route's `name` is its operation's id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from shared.api.body import json_body
from shared.api.odata import MAX_PAGE, SkipToken, Top
from shared.api.refs import CollectionRefDep, ListingScopeDep, RuntimeDep, SubscriptionDep
from shared.api.schemas import (
    COLLECTION_PATCH_BODY,
    COLLECTION_PUT_BODY,
    CollectionListOut,
    CollectionOut,
)
from shared.api.views import collection_json, page
from shared.model.job import JobState
from shared.runtime import Runtime

router = APIRouter()
by_subscription = APIRouter()


@by_subscription.get(
    "/subscriptions/{subscriptionId}/providers/Microsoft.Scheduler/jobCollections",
    response_model=CollectionListOut,
    response_model_exclude_none=True,
    name="JobCollections_ListBySubscription",
    summary="List By Subscription",
)
async def list_by_subscription(
    subscription: SubscriptionDep,
    request: Request,
    rt: RuntimeDep,
    top: Top = MAX_PAGE,
    skiptoken: SkipToken = None,
) -> dict[str, Any]:
    return await _collection_page(rt, request, subscription, None, top, skiptoken)


@router.get(
    "",
    response_model=CollectionListOut,
    response_model_exclude_none=True,
    name="JobCollections_ListByResourceGroup",
    summary="List Collections",
)
async def list_collections(
    scope: ListingScopeDep,
    request: Request,
    rt: RuntimeDep,
    top: Top = MAX_PAGE,
    skiptoken: SkipToken = None,
) -> dict[str, Any]:
    return await _collection_page(
        rt, request, scope.subscription, scope.resource_group, top, skiptoken
    )


async def _collection_page(
    rt: Runtime,
    request: Request,
    subscription: str,
    resource_group: str | None,
    top: int,
    skiptoken: str | None,
) -> dict[str, Any]:
    found, token = await rt.jobs.list_collections(subscription, resource_group, top, skiptoken)
    return page(request, (collection_json(c) for c in found), token)


@router.put(
    "/{jobCollectionName}",
    response_model=CollectionOut,
    response_model_exclude_none=True,
    status_code=200,
    responses={201: {"model": CollectionOut, "description": "Created"}},
    name="JobCollections_CreateOrUpdate",
    summary="Put Collection",
    openapi_extra=COLLECTION_PUT_BODY,
)
async def put_collection(request: Request, rt: RuntimeDep, ref: CollectionRefDep) -> Any:
    body = await json_body(request, required=False)
    stored, created = await rt.jobs.put_collection(ref, body)
    return JSONResponse(collection_json(stored), status_code=201 if created else 200)


@router.patch(
    "/{jobCollectionName}",
    response_model=CollectionOut,
    response_model_exclude_none=True,
    name="JobCollections_Patch",
    summary="Patch Collection",
    openapi_extra=COLLECTION_PATCH_BODY,
)
async def patch_collection(request: Request, rt: RuntimeDep, ref: CollectionRefDep) -> Any:
    body = await json_body(request, required=True)
    return collection_json(await rt.jobs.patch_collection(ref, body))


@router.get(
    "/{jobCollectionName}",
    response_model=CollectionOut,
    response_model_exclude_none=True,
    name="JobCollections_Get",
    summary="Get Collection",
)
async def get_collection(rt: RuntimeDep, ref: CollectionRefDep) -> Any:
    return collection_json(await rt.jobs.get_collection(ref))


@router.delete(
    "/{jobCollectionName}",
    response_class=Response,
    name="JobCollections_Delete",
    summary="Delete Collection",
)
async def delete_collection(rt: RuntimeDep, ref: CollectionRefDep) -> Response:
    await rt.jobs.delete_collection(ref)
    return Response(status_code=200)


@router.post(
    "/{jobCollectionName}/enable",
    response_class=Response,
    name="JobCollections_Enable",
    summary="Enable",
)
async def enable(rt: RuntimeDep, ref: CollectionRefDep) -> Response:
    await rt.jobs.set_all_jobs_state(ref, JobState.ENABLED)
    return Response(status_code=200)


@router.post(
    "/{jobCollectionName}/disable",
    response_class=Response,
    name="JobCollections_Disable",
    summary="Disable",
)
async def disable(rt: RuntimeDep, ref: CollectionRefDep) -> Response:
    await rt.jobs.set_all_jobs_state(ref, JobState.DISABLED)
    return Response(status_code=200)
