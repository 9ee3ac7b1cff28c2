"""One index of products for the per-product arrays of an engine's learners.

A large catalog has a million products; each learner that keeps a number per product in a
dictionary of its own pays a dictionary entry, an int and an id per product. Sharing one
index, each keeps only its numpy arrays (8 bytes a product a column).
"""
from __future__ import annotations

import numpy as np


class ProductIndex:
    """Product id -> position in per-product count arrays, shared by the counts of one engine
    (recent sales, the showcases' sales, views and trends): each product's id and position are
    held once, not once per count (a large catalog has a million of them).

    >>> products = ProductIndex()
    >>> products.position("tea"), products.position("mug"), products.position("tea"), len(products)
    (0, 1, 0, 2)
    """

    __slots__ = ("index", "ids")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, pid: str) -> int:
        """The product's position, a new one for a product not indexed yet."""
        i = self.index.get(pid)
        if i is None:
            i = self.index[pid] = len(self.ids)
            self.ids.append(pid)
        return i

    def covering(self, array: np.ndarray, fill: float = 0) -> np.ndarray:
        """``array`` (a value per position), or a copy grown to hold one for every indexed
        product: doubled until it does, the new places ``fill``.

        >>> products = ProductIndex()
        >>> for pid in ("a", "b", "c"):
        ...     _ = products.position(pid)
        >>> products.covering(np.zeros(2), fill=-1).tolist()
        [0.0, 0.0, -1.0, -1.0]
        """
        size = len(array)
        if size >= len(self.ids):
            return array
        while size < len(self.ids):
            size *= 2
        return np.concatenate([array, np.full(size - len(array), fill, dtype=array.dtype)])
