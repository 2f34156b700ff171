"""The runs of inputs a node claimed (services.input_runs), each until every input of it
ended there: then the node acks it."""

from __future__ import annotations


class HeldRuns:
    def __init__(self) -> None:
        self._left: dict[str, int] = {}
        """Inputs of each run, by its receipt, that have not ended here."""

    def add(self, receipt: str, count: int) -> None:
        self._left[receipt] = count

    def holds(self, receipt: str) -> bool:
        """Whether `receipt` is a run's this node holds (else it is one input's)."""
        return receipt in self._left

    def ended(self, receipt: str, count: int = 1) -> bool:
        """`count` inputs of run `receipt` ended here; True once they were its last, when
        the run is the node's to ack."""
        left = self._left.get(receipt)
        if left is None:
            return False
        if left > count:
            self._left[receipt] = left - count
            return False
        del self._left[receipt]
        return True

    def drop(self, receipts: list[str]) -> None:
        """Forget runs handed back or let go of with their job."""
        for receipt in receipts:
            self._left.pop(receipt, None)
