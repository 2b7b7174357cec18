"""A job's schedule in words, to read before trusting it (`sched job next`). Client-side on
purpose: the CLI works against any version of the app."""

from __future__ import annotations

from typing import Any

_PLURAL = {"Minute": "minutes", "Hour": "hours", "Day": "days", "Week": "weeks", "Month": "months"}
_ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}


def describe_schedule(properties: dict[str, Any]) -> str:
    start = properties.get("startTime")
    recurrence = properties.get("recurrence")
    if not isinstance(recurrence, dict) or not recurrence:
        return f"once, at {start}" if start else "once, as soon as it is saved"
    zone = recurrence.get("timeZone") or "UTC"
    if recurrence.get("cron"):
        cron = str(recurrence["cron"])
        form = "NCRONTAB, seconds first" if len(cron.split()) == 6 else "cron"
        words = f"on cron '{cron}' ({form}) in {zone}"
    else:
        words = _calendar(recurrence, zone)
    if start:
        words += f", from {start}"
    if recurrence.get("count"):
        words += f", {recurrence['count']} times at most"
    if recurrence.get("endTime"):
        words += f", until {recurrence['endTime']}"
    return words


def _calendar(recurrence: dict[str, Any], zone: str) -> str:
    frequency = str(recurrence.get("frequency", "")).capitalize()
    interval = int(recurrence.get("interval") or 1)
    unit = _PLURAL.get(frequency, frequency.lower() + "s")
    words = f"every {unit[:-1]}" if interval == 1 else f"every {interval} {unit}"
    schedule = recurrence.get("schedule") or {}
    if schedule.get("weekDays"):
        words += " on " + _join(schedule["weekDays"])
    if schedule.get("monthDays"):
        days = [("the last day" if d == -1 else f"day {d}") for d in schedule["monthDays"]]
        words += " on " + _join(days)
    if schedule.get("monthlyOccurrences"):
        parts = [
            f"the {_ORDINAL.get(o.get('occurrence'), str(o.get('occurrence')))} {o.get('day')}"
            if o.get("occurrence")
            else f"every {o.get('day')}"
            for o in schedule["monthlyOccurrences"]
        ]
        words += " on " + _join(parts)
    hours, minutes = schedule.get("hours"), schedule.get("minutes")
    if hours and minutes:
        words += " at " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    elif hours:
        words += " at hours " + _join([str(h) for h in hours]) + " (the start's minute)"
    elif minutes:
        words += " at minutes " + _join([str(m) for m in minutes]) + " past every hour"
    return f"{words} ({zone})"


def _join(items: list[Any]) -> str:
    texts = [str(item) for item in items]
    if len(texts) <= 1:
        return "".join(texts)
    return ", ".join(texts[:-1]) + " and " + texts[-1]
