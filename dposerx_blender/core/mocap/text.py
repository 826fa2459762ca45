"""Small helpers shared by the text mocap parsers (BVH, ASF/AMC)."""
from __future__ import annotations

from ..errors import DPoserError


def parse_error(label: str, line: int, message: str) -> DPoserError:
    """An error naming the file and the 1-based line: "walk.bvh:17: message"."""
    return DPoserError(f"{label}:{line}: {message}")


def is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
