"""The unit every producer of input events sends: the data-set readers, the simulator, the demo.

>>> Record("cart", "u1", {"type": "add"}).paced
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    """One message to produce (topic name without prefix, key, JSON-able value); ``paced`` False
    for set-up (catalog, warm-up) sent at full speed."""

    topic: str
    key: str
    value: dict[str, Any]
    paced: bool = True
