"""The runs of inputs a node claimed (services.input_runs), each until every input of it
ended there. The node acks a run all of whose inputs succeeded; one with an input that
ended without a result (it raised, or its worker went) is main_service's to ack, once it
has settled that input: the node's ack would take the input out of the queue before
anything durable says what became of it."""

from __future__ import annotations


class HeldRuns:
    def __init__(self) -> None:
        self._left: dict[str, int] = {}
        """Inputs of each run, by its receipt, that have not ended here."""
        self._let_go: set[str] = set()
        """Runs with an input that ended here without a result."""

    def add(self, receipt: str, count: int) -> None:
        self._left[receipt] = count

    def holds(self, receipt: str) -> bool:
        """Whether `receipt` is a run's this node holds (else it is one input's)."""
        return receipt in self._left

    def ended(self, receipt: str, count: int = 1) -> bool:
        """`count` inputs of run `receipt` succeeded here; True once they were its last
        and none of it was let go, when the run is the node's to ack."""
        left = self._left.get(receipt)
        if left is None:
            return False
        if left > count:
            self._left[receipt] = left - count
            return False
        del self._left[receipt]
        if receipt in self._let_go:
            self._let_go.remove(receipt)
            return False
        return True

    def let_go(self, receipt: str) -> None:
        """An input of `receipt` ended here without a result (it raised, or its worker
        went): main_service settles it, and acks its item, or the run it came in (the
        node stops renewing the run once all of it ended)."""
        if receipt in self._left:
            self._let_go.add(receipt)
            self.ended(receipt)

    def drop(self, receipts: list[str]) -> None:
        """Forget runs handed back or let go of with their job."""
        for receipt in receipts:
            self._left.pop(receipt, None)
            self._let_go.discard(receipt)
