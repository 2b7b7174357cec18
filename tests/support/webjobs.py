"""WebJobs folders for tests: a temp root with `.py` and `.sh` scripts (one printing its
arguments and environment, one failing with exit 1, one sleeping until its shutdown file
appears) and a runtime whose WebJob kind reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PRINTER = """\
import os, sys
print("args=" + " ".join(sys.argv[1:]))
for key in sorted(os.environ):
    if key.startswith("WEBJOBS_"):
        print(key + "=" + os.environ[key])
print("cwd=" + os.getcwd())
print("to stderr", file=sys.stderr)
"""

FAILER = """\
echo "about to fail"
exit 1
"""

SLEEPER = """\
echo "waiting for $WEBJOBS_SHUTDOWN_FILE"
trap '' TERM
while [ ! -f "$WEBJOBS_SHUTDOWN_FILE" ]; do sleep 0.05; done
echo "shutdown file seen"
"""

STUBBORN = """\
echo "ignoring everything"
trap '' TERM
while true; do sleep 0.05; done
"""


def write_job(
    root: Path, job_type: str, name: str, script: str, body: str, settings: Any = None
) -> Path:
    folder = root / job_type / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / script).write_text(body)
    if settings is not None:
        text = settings if isinstance(settings, str) else json.dumps(settings)
        (folder / "settings.job").write_text(text)
    return folder


def standard_root(root: Path) -> Path:
    write_job(root, "triggered", "printer", "run.py", PRINTER, {"schedule": "0 0 * * * *"})
    write_job(root, "triggered", "failer", "run.sh", FAILER)
    write_job(root, "triggered", "sleeper", "run.sh", SLEEPER, {"stopping_wait_time": 5})
    write_job(root, "triggered", "broken", "run.py", PRINTER, "{not json")
    write_job(root, "continuous", "forever", "run.sh", SLEEPER)
    return root
