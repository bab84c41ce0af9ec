"""Where the project is: the nearest directory at or above the working directory that holds `Pulumi.yaml`,
found the way the Pulumi CLI finds it, so every command works from any subdirectory of a checkout."""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The project directory; the working directory itself when no `Pulumi.yaml` is above it."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    return here


def shown(path: Path) -> Path:
    """A path as the user would type it from where they are (relative when that is shorter)."""
    try:
        relative = Path(os.path.relpath(path))
    except ValueError:  # another drive
        return path
    return relative if len(str(relative)) <= len(str(path)) else path


def stacks_dir() -> Path:
    return shown(project_root() / "stacks")
