"""``local``: every partition in this process, one after another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..splits import Partition
from . import PartitionCall, Started


class LocalBackend:
    name = "local"

    def map(
        self, call: PartitionCall, parts: list[Partition], started: Started = None
    ) -> Iterator[tuple[Partition, Any]]:
        for part in parts:
            if started is not None:
                started(part.describe())
            yield part, call(part)

    def close(self) -> None:
        return None
