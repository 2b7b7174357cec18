"""Path parameters -> the collection they name, and the runtime the handlers work with.

Each router is written once, with paths relative to a `.../jobCollections` prefix, and mounted
twice (shared/api/app.py): under ARM's prefix, whose subscription and resource group are path
parameters, and under the short `/jobCollections` prefix, which names the default ones. The
handlers' dependencies read whichever the mount has, so no handler knows where it is mounted.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from shared.names import (
    DEFAULT_RESOURCE_GROUP,
    DEFAULT_SUBSCRIPTION,
    NAME,
    NAME_RULE,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    CollectionRef,
)
from shared.runtime import Runtime

RuntimeProvider = Callable[[], Awaitable[Runtime]]


async def runtime_of(request: Request) -> Runtime:
    """The runtime the app was created with (tests pass their own)."""
    provider: RuntimeProvider = request.app.state.get_runtime
    return await provider()


def _documented(pattern: re.Pattern[str], description: str) -> Any:
    """A path segment whose rule the OpenAPI document states; it is enforced by shared.names
    (a 400 that names the segment and the rule), not by FastAPI."""
    return Path(description=description, json_schema_extra={"pattern": f"^{pattern.pattern}$"})


SubscriptionId = Annotated[str, _documented(SUBSCRIPTION, "1-64 letters, digits and '-'")]
ResourceGroupName = Annotated[
    str,
    _documented(
        RESOURCE_GROUP, "1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'"
    ),
]
CollectionName = Annotated[str, _documented(NAME, NAME_RULE)]
JobName = Annotated[str, _documented(NAME, NAME_RULE)]


def arm_scope(subscriptionId: SubscriptionId, resourceGroupName: ResourceGroupName) -> None:
    """The ARM mount's own path parameters, declared here so that every operation under it
    documents them; `collection_ref` and `listing_scope` read and check them."""


def _scope_in(request: Request) -> tuple[str, str]:
    """The subscription and resource group the path names: ARM's, or the short paths' default."""
    params = request.path_params
    return (
        params.get("subscriptionId", DEFAULT_SUBSCRIPTION),
        params.get("resourceGroupName", DEFAULT_RESOURCE_GROUP),
    )


def collection_ref(request: Request, jobCollectionName: CollectionName) -> CollectionRef:
    """The collection the path names (a bad segment is a 400 naming it)."""
    return CollectionRef.parse(jobCollectionName, *_scope_in(request))


def listing_scope(request: Request) -> CollectionRef:
    """The subscription and resource group whose collections a list names, checked; the ref's
    own name is a placeholder (a list names no collection)."""
    return CollectionRef.parse("x", *_scope_in(request))


def subscription_scope(subscriptionId: SubscriptionId) -> str:
    """A subscription named alone (the list of all its resource groups' collections), checked."""
    return CollectionRef.parse("x", subscriptionId).subscription


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
CollectionRefDep = Annotated[CollectionRef, Depends(collection_ref)]
ListingScopeDep = Annotated[CollectionRef, Depends(listing_scope)]
SubscriptionDep = Annotated[str, Depends(subscription_scope)]
