"""`python -m scheduler_cli` runs the same command as `sched`."""

from __future__ import annotations

from scheduler_cli.main import main

main()
