"""WebJobs folders as Kudu lays them out: `{root}/triggered/{name}/` and
`{root}/continuous/{name}/`, each with a script and an optional `settings.job`.

Discovery never raises for a bad folder: the job is listed with its `error` (no script, an
interpreter this host lacks, a bad settings.job), as Kudu lists it, and is not run.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from croniter import croniter

TRIGGERED = "triggered"
CONTINUOUS = "continuous"
JOB_TYPES = (TRIGGERED, CONTINUOUS)
SETTINGS_FILE = "settings.job"
DEFAULT_STOPPING_WAIT_SECONDS = 5  # Kudu's default stopping_wait_time
MAX_STOPPING_WAIT_SECONDS = 300
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

# Kudu's order of entry points (MicrosoftDocs app-service/webjobs-execution.md): the first
# `run.<ext>` found in this order; else the first supported script, by name.
SCRIPT_ORDER = (".cmd", ".bat", ".exe", ".ps1", ".sh", ".py", ".php", ".js", ".fsx")


@dataclass(frozen=True)
class JobSettings:
    """The keys of settings.job this app honours (others are kept for the listing only)."""

    schedule: str | None = None
    is_singleton: bool = True
    stopping_wait_time: int = DEFAULT_STOPPING_WAIT_SECONDS
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebJobFolder:
    name: str
    type: str  # triggered | continuous
    path: Path
    script: Path | None
    settings: JobSettings
    error: str | None = None

    @property
    def runnable(self) -> bool:
        return self.error is None and self.script is not None


def discover(root: Path) -> list[WebJobFolder]:
    """Every job folder under `root` (none if it is absent), sorted by type and name."""
    found: list[WebJobFolder] = []
    for job_type in JOB_TYPES:
        base = root / job_type
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            if _NAME.fullmatch(folder.name):
                found.append(read_folder(folder, job_type))
    return found


def read_folder(folder: Path, job_type: str) -> WebJobFolder:
    settings, error = JobSettings(), None
    try:
        settings = read_settings(folder / SETTINGS_FILE, job_type)
    except ValueError as problem:
        error = f"{SETTINGS_FILE}: {problem}"
    script = find_script(folder)
    if error is None:
        if script is None:
            error = "no script to run (run.py, run.sh, run.js, ...)"
        else:
            error = unsupported(script)
    return WebJobFolder(folder.name, job_type, folder, script, settings, error)


def read_settings(path: Path, job_type: str) -> JobSettings:
    """settings.job as JSON; a missing file is the defaults; ValueError says what is wrong."""
    if not path.is_file():
        return JobSettings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise ValueError("must be a JSON object")
    schedule = raw.get("schedule")
    if schedule is not None:
        if job_type != TRIGGERED:
            raise ValueError("schedule applies to triggered jobs only")
        if not isinstance(schedule, str) or len(schedule.split()) != 6:
            raise ValueError(
                "schedule must be a 6-field NCRONTAB: second minute hour day month day-of-week"
            )
        try:
            croniter(schedule, datetime(2000, 1, 1), second_at_beginning=True)
        except (ValueError, KeyError) as error:
            raise ValueError(f"schedule is not a valid NCRONTAB expression: {error}") from None
    singleton = raw.get("is_singleton", True)
    if not isinstance(singleton, bool):
        raise ValueError("is_singleton must be true or false")
    wait = raw.get("stopping_wait_time", DEFAULT_STOPPING_WAIT_SECONDS)
    if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait <= 300:
        raise ValueError(
            f"stopping_wait_time must be whole seconds, 0..{MAX_STOPPING_WAIT_SECONDS}"
        )
    return JobSettings(schedule, singleton, wait, raw)


def find_script(folder: Path) -> Path | None:
    for extension in SCRIPT_ORDER:
        candidate = folder / f"run{extension}"
        if candidate.is_file():
            return candidate
    scripts = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SCRIPT_ORDER
    )
    return scripts[0] if scripts else None


def command_for(script: Path) -> list[str] | None:
    """The argv that runs `script` on this host (no shell), or None if it cannot run here."""
    extension = script.suffix.lower()
    if extension == ".py":
        return [sys.executable, str(script)]
    if extension == ".sh":
        bash = shutil.which("bash")
        return None if bash is None else [bash, str(script)]
    if extension == ".js":
        node = shutil.which("node")
        return None if node is None else [node, str(script)]
    if extension == ".ps1":
        pwsh = shutil.which("pwsh")
        return None if pwsh is None else [pwsh, "-NoProfile", "-File", str(script)]
    if extension == ".php":
        php = shutil.which("php")
        return None if php is None else [php, str(script)]
    return None


def unsupported(script: Path) -> str | None:
    if command_for(script) is not None:
        return None
    return f"{script.name} cannot run on this host (its interpreter is not installed)"
