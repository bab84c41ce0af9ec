"""How often a Kubernetes CronJob schedule fires: the shortest gap between two runs, in minutes.

Covers the five-field syntax the CronJob controller accepts (robfig/cron standard parser): `*`, `a`, `a-b`,
`*/n`, `a-b/n`, lists, and the @hourly/@daily/@weekly/@monthly/@yearly macros. The gap is exact for the
minute and hour fields; day fields only matter through whether runs happen on consecutive days.
"""

from __future__ import annotations

import itertools

MINUTES_PER_DAY = 24 * 60
_MACROS = {"@hourly": 60, "@daily": MINUTES_PER_DAY, "@midnight": MINUTES_PER_DAY,
           "@weekly": 7 * MINUTES_PER_DAY, "@monthly": 28 * MINUTES_PER_DAY, "@yearly": 365 * MINUTES_PER_DAY,
           "@annually": 365 * MINUTES_PER_DAY}  # fmt: skip


class CronError(ValueError):
    """A schedule the CronJob controller would reject."""


def _field(text: str, low: int, high: int) -> list[int]:
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CronError(f"step {step_text!r} must be >= 1")
        if spec in ("*", "?"):
            start, end = low, high
        elif "-" in spec:
            a, _, b = spec.partition("-")
            start, end = int(a), int(b)
        else:
            start = int(spec)
            end = high if step_text else start
        if not low <= start <= end <= high:
            raise CronError(f"{part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return sorted(values)


def min_interval_minutes(schedule: str) -> int:
    """The shortest time between two consecutive runs of a CronJob schedule."""
    text = schedule.strip()
    if text in _MACROS:
        return _MACROS[text]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"{schedule!r}: a schedule has five fields (minute hour day month weekday)")
    try:
        minutes, hours = _field(fields[0], 0, 59), _field(fields[1], 0, 23)
    except ValueError as exc:
        raise CronError(f"{schedule!r}: {exc}") from None
    times = sorted(h * 60 + m for h in hours for m in minutes)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    every_day = fields[2] in ("*", "?") and fields[4] in ("*", "?")
    if every_day:
        gaps.append(times[0] + MINUTES_PER_DAY - times[-1])
    return min(gaps) if gaps else MINUTES_PER_DAY
