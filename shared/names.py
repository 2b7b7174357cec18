"""Resource names and how they map to storage keys.

A job collection is identified by subscription, resource group and name (ARM's namespaces; the
short `/api/jobCollections/...` paths use a default pair). Its jobs live in the Table partition
`<subscription>|<resourceGroup>|<name>`: the characters allowed below can never contain `|` nor
any character Table keys refuse (`/`, `\\`, `#`, `?`, control characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import InvalidRequest

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RESOURCE_GROUP = "default"

# Azure Scheduler's job and collection names: letters, digits, '-' and '_'; we cap them at 100.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# ARM: subscription ids are GUIDs (we take any 1-64 letters, digits and '-'); resource groups are
# 1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'.
SUBSCRIPTION = re.compile(r"[A-Za-z0-9-]{1,64}")
RESOURCE_GROUP = re.compile(r"[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]")

NAME_RULE = "1-100 characters: letters, digits, '-' and '_', starting with a letter or digit"


def check_name(field: str, name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidRequest(field, f"'{_printable(name)}' is not a valid name: {NAME_RULE}")
    return name


def _printable(text: str) -> str:
    shown = "".join(c if c.isprintable() else "?" for c in text[:120])
    return shown + ("..." if len(text) > 120 else "")


@dataclass(frozen=True)
class CollectionRef:
    subscription: str
    resource_group: str
    name: str

    @classmethod
    def parse(
        cls,
        name: str,
        subscription: str = DEFAULT_SUBSCRIPTION,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
    ) -> CollectionRef:
        """Validate path segments; a bad one is a 400 naming the segment."""
        if not SUBSCRIPTION.fullmatch(subscription):
            raise InvalidRequest(
                "subscriptionId", f"'{_printable(subscription)}' is not a valid subscription id"
            )
        if not RESOURCE_GROUP.fullmatch(resource_group):
            raise InvalidRequest(
                "resourceGroupName",
                f"'{_printable(resource_group)}' is not a valid resource group name: 1-90 "
                "letters, digits, '_', '-', '.', '(' and ')', not ending in '.'",
            )
        return cls(subscription, resource_group, check_name("jobCollectionName", name))

    @property
    def namespace(self) -> str:
        """Partition of the collections table: one per subscription and resource group."""
        return f"{self.subscription}|{self.resource_group}"

    @property
    def key(self) -> str:
        """Partition of the jobs table holding this collection's jobs, runs and history."""
        return f"{self.namespace}|{self.name}"

    @classmethod
    def from_key(cls, key: str) -> CollectionRef:
        subscription, resource_group, name = key.split("|")
        return cls(subscription, resource_group, name)

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Scheduler/jobCollections/{self.name}"
        )
