"""Collection definitions: integer fields take JSON integers only, as the rest of the model does."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.model.collection import CollectionDefinition


def refused_at(data: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as info:
        CollectionDefinition.model_validate(data)
    return ".".join(str(part) for part in info.value.errors()[0]["loc"])


@pytest.mark.parametrize("bad", [True, "3", 3.0])
def test_quota_integers_refuse_booleans_strings_and_floats(bad: object) -> None:
    quota = {"maxJobCount": bad}
    assert refused_at({"properties": {"quota": quota}}) == "properties.quota.maxJobCount"
    quota = {"maxJobOccurrence": bad}
    assert refused_at({"properties": {"quota": quota}}) == "properties.quota.maxJobOccurrence"
    quota = {"maxRecurrence": {"frequency": "Minute", "interval": bad}}
    assert refused_at({"properties": {"quota": quota}}) == (
        "properties.quota.maxRecurrence.interval"
    )


def test_quota_integers_accept_json_integers() -> None:
    quota = {"maxJobCount": 3, "maxRecurrence": {"frequency": "Minute", "interval": 5}}
    definition = CollectionDefinition.model_validate({"properties": {"quota": quota}})
    assert definition.properties.quota is not None
    assert definition.properties.quota.max_job_count == 3
