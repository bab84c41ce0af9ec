"""GCP resource labels: the stack's tags rewritten to what Google Cloud accepts.

GCP labels allow only lowercase letters, digits, `_` and `-` (keys must start with a letter, both at most 63
characters), so `costCenter: "4711"` becomes `cost_center: "4711"`. Cost reports group by these labels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_INVALID = re.compile(r"[^a-z0-9_-]")
_MAX = 63


def label_key(key: str) -> str:
    """`costCenter` -> `cost_center`; `team.name` -> `team_name`; keys start with a letter (`k_` prefix if not)."""
    text = _INVALID.sub("_", _CAMEL.sub("_", key).lower())
    if not text or not text[0].isalpha():
        text = f"k_{text}"
    return text[:_MAX]


def label_value(value: str) -> str:
    """Lowercase, invalid characters replaced by `_`, at most 63 characters (empty values are allowed)."""
    return _INVALID.sub("_", value.lower())[:_MAX]


def gcp_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """Rewrite tags as GCP labels; raises ValueError when two tags collapse onto the same key."""
    labels: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key, value in tags.items():
        new_key = label_key(key)
        if new_key in labels and origin[new_key] != key:
            raise ValueError(
                f"tags {origin[new_key]!r} and {key!r} both become the GCP label key {new_key!r}"
            )
        labels[new_key] = label_value(str(value))
        origin[new_key] = key
    return dict(sorted(labels.items()))


def account_id(text: str) -> str:
    """A service account id: 6-30 chars of [a-z0-9-], starting with a letter; long names keep a stable hash."""
    clean = "-".join(part for part in re.split(r"[^a-z0-9]+", text.lower()) if part)
    if not clean[:1].isalpha():
        clean = f"sa-{clean}"
    if len(clean) > 30:
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        clean = f"{clean[:23].rstrip('-')}-{digest}"
    return clean.ljust(6, "0")
