"""Writing result and data files so that a reader never sees a half-written one.

Every file the reproduction tooling writes (IDX files, JSON results, tables) goes
through `atomic_write`: the bytes go to a fresh temporary file beside the target,
which is then renamed over it.  An interrupted run (Ctrl-C, `kill`, a full disk)
therefore leaves either the previous file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "write_json", "clean"]


def atomic_write(path: str | os.PathLike[str], payload: bytes | str) -> Path:
    """Write `payload` to `path` through a temporary file and a rename.

    Parameters
    ----------
    path : str or path-like
        Destination.  Missing parent directories are created.
    payload : bytes or str
        The content; a `str` is encoded as UTF-8.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    Unlike `tempfile.mkstemp` (always mode 0600), the temporary file is created
    with the usual permissions under the process umask, which the final file keeps.
    """
    path = Path(path)
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # a random name taken: astronomically rare, try another
            continue
    else:
        raise FileExistsError(f"cannot create a temporary file beside {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def clean(value: Any) -> Any:
    """Return `value` with NaN and infinities replaced by None, recursively.

    Standard JSON has no NaN; a diverged run's curves hold some, and None (JSON
    `null`) keeps the files readable by any JSON parser.

    Parameters
    ----------
    value : Any
        Floats, NumPy scalars, and dicts, lists and tuples of them (other values
        are returned unchanged).

    Returns
    -------
    Any
        The same structure with tuples turned into lists.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        return clean(value.item())
    return value


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write `data` as indented standard JSON, atomically (see `atomic_write`).

    Parameters
    ----------
    path : str or path-like
        Destination.
    data : Any
        JSON-serialisable data; non-finite floats are written as `null`.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    return atomic_write(path, json.dumps(clean(data), indent=1) + "\n")
