"""The `webJob` payload of a WebJob action: which folder (type and name) to run. The script and
settings.job are read from the folder at each run, so a redeployment takes effect at once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.model.common import ApiModel


class WebJobAction(ApiModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    job_type: Literal["triggered", "continuous"] = "triggered"
