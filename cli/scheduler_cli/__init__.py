"""`sched`: a command line for the job scheduler's HTTP API, in the habits of az and gcloud."""

from __future__ import annotations

__version__ = "0.1.0"
