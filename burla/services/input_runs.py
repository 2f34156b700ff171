"""Queue items that hold runs of inputs: one claim, renewal and ack for many inputs.

A job big enough to spread over several runs per node hands each of its first nodes
half its share with the assignment (services.handed_inputs), then has its inputs
written to its input pages (input_pages) before the rest is queued: one item per run of
inputs that follow one another, `r<first>` -> RUN `<first>:<count>`. A node that
claims a run reads each of its pages once (pages are kept for the runs that follow)
and handles each input as it handles an item of its own. It acks the run once every input of it
succeeded there. main_service never hands back a run a node holds, but puts an input
back (a retry, a worker that died) as an item of its own, `<index>` -> RUN
`<index>:1`. It acks a run with an input that ended without a result (it raised, or its
worker went) once every input of it is settled (finished, or queued on its own): only
main_service writes what became of such an input, and a node's ack before that would
leave it in no queue, with no result, if main_service died meanwhile. It acks the runs
of a node that was lost once their unfinished inputs are queued on their own.

An input that ran out of memory and is to run with more (burla.core.memory) is queued
as an item of its own too, whatever the job's size: `<index>@<GB>` -> RUN
`<index>:1:<GB>`, an id per memory it gets (so that an item of the same input for less
memory left in the queue never stands in its way), which the node that claims it runs
on a worker of that memory.

A small job's inputs ride with its nodes' assignments (handed_inputs); those no node had
room for are queued an item per input with the input in it: no page to read on the way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from burla.core import wire
from burla.core.errors import NotFoundError
from burla.core.protocols import Store
from burla.services.input_pages import BLOB_KIND, page_key
from burla.services.store_keys import IN_BLOB, INLINE, RUN, RUN_PREFIX, inputs_prefix

RUNS_PER_NODE = 8
"""Runs a job's queue holds for each node it may run on: enough that the nodes finish
together (a node holds one run ahead of its workers), few enough that a run is many
inputs..."""
MOST_RUNS = 1_000
"""...but no more than this: each run is three writes to the job's queue (its push, claim
and ack), and a new queue on Firestore takes 500 writes a second at first (the 500/50/5
rule). A job on more nodes hands each its first inputs (services.handed_inputs) and
queues about a run per node for the rest."""
BATCH_PER_NODE = RUNS_PER_NODE // 2
"""Runs for each node in a batch of a job's runs (run_lengths): short enough that a node
that claims runs for its free workers takes few more than they run..."""
HALVINGS = 6
"""...but fewer where MOST_RUNS would not hold this many batches, each half as long as
the one before, so that the last runs are short."""
MOST_PER_RUN = 1_000
LEAST_PER_RUN = 8
PAGES_KEPT = 8
"""Input pages a node keeps read, per job: runs are claimed oldest first, so the runs of
one page come one after another."""

Item = tuple[str, bytes]


def in_runs(n_inputs: int, nodes: int) -> bool:
    """Whether a job of `n_inputs` that may run on up to `nodes` nodes is queued in runs:
    it has two inputs or more for each run its queue would hold (RUNS_PER_NODE for each
    node, MOST_RUNS in all)."""
    return n_inputs // min(max(1, nodes) * RUNS_PER_NODE, MOST_RUNS) > 1


def handed_each(n_inputs: int, nodes: int, workers: int) -> int:
    """Inputs handed to each node a job queued in runs gets at its start: half its share
    if it may run on `nodes` nodes, in whole rounds of its `workers` (see run_lengths).
    They start with no claim from the queue; the other half, in runs, is what nodes that
    finish early (or join late) take over."""
    return _whole_rounds(n_inputs // (2 * max(1, nodes)), workers)


def _whole_rounds(count: int, workers: int) -> int:
    """`count` to the nearest whole rounds of `workers` (an input each), if it holds one."""
    return max(1, round(count / workers)) * workers if count >= workers > 0 else count


def run_lengths(n_inputs: int, nodes: int, workers: int = 1) -> list[int]:
    """The lengths of the runs that queue `n_inputs` of a job that may run on up to
    `nodes` nodes of `workers` each, in queue order. Runs come in batches of up to
    BATCH_PER_NODE for each node, each batch half of what is left (factoring): the runs
    claimed last are short, so that no node is left with a long one as the others
    finish, and a node that claims for its free workers takes little more than they
    run. At most MOST_RUNS runs
    (unless that would make them longer than MOST_PER_RUN): the last batch takes what
    is left evenly, in runs of up to LEAST_PER_RUN, or fewer, longer runs within
    MOST_RUNS.

    The last batch's runs, when they hold a round of the workers or more, are cut in
    whole rounds: a node whose inputs take about as long as one another then ends its
    share at the end of a round, and nodes whose shares differ by a round end a round
    apart, rather than all in the last round, each with a last page of results to write
    at once (a new key range on Firestore takes 500 writes a second)."""
    nodes = max(1, nodes)
    batch = nodes * max(1, min(BATCH_PER_NODE, MOST_RUNS // (nodes * HALVINGS)))
    lengths: list[int] = []
    left = n_inputs
    while left > 0:
        budget = MOST_RUNS - len(lengths)
        size = min(MOST_PER_RUN, -(-left // (2 * batch)))
        if budget < 2 * batch or size < LEAST_PER_RUN:
            count = max(1, min(budget, -(-left // LEAST_PER_RUN)), -(-left // MOST_PER_RUN))
            return lengths + _shared_out(left, count, workers)
        count = min(batch, -(-left // size))
        lengths += [size] * count
        left -= min(left, size * count)
    return lengths


def _shared_out(left: int, count: int, workers: int) -> list[int]:
    """`left` inputs in `count` runs, as even as may be: in whole rounds of `workers`
    where each run holds one (within MOST_PER_RUN), those with a round more first, and
    what is left of a round in the first run of the others."""
    rounds, part = divmod(left, workers)
    more, fewer = divmod(rounds, count)
    if workers > 1 and more and (more + 1) * workers <= MOST_PER_RUN and fewer < count:
        lengths = [(more + 1) * workers] * fewer + [more * workers] * (count - fewer)
        lengths[fewer] += part
        return lengths
    even, extra = divmod(left, count)
    return [even + 1] * extra + [even] * (count - extra)


def runs_of_items(items: Sequence[Item], lengths: Sequence[int]) -> list[Item]:
    """Runs of `items` that follow one another, in index order, their lengths as
    `lengths` says (the last for any beyond): a run cut short by a gap (an input not
    queued) leaves the rest of its length to the next."""
    runs: list[Item] = []
    first = count = 0
    turn = 0
    want = lengths[0]
    for index in sorted(int(item_id) for item_id, _ in items):
        if count and (index != first + count or count == want):
            runs.append(_run(first, count))
            want -= count
            if want <= 0:
                turn += 1
                want = lengths[min(turn, len(lengths) - 1)]
            count = 0
        if not count:
            first = index
        count += 1
    if count:
        runs.append(_run(first, count))
    return runs


def _run(first: int, count: int) -> Item:
    return f"{RUN_PREFIX}{first}", run_data(first, count)


def run_data(first: int, count: int) -> bytes:
    return RUN + f"{first}:{count}".encode()


def one_input(index: int) -> Item:
    """The item that queues one input of a job queued in runs again, on its own."""
    return str(index), run_data(index, 1)


def grown_input(index: int, memory_gb: float) -> Item:
    """The item that queues one input again, to run on a worker of `memory_gb` GB."""
    return f"{index}@{memory_gb!r}", run_data(index, 1) + f":{memory_gb!r}".encode()


def is_run(item_id: str) -> bool:
    return item_id.startswith(RUN_PREFIX)


def run_of(data: bytes) -> tuple[int, int] | None:
    """(first, count) of an item that refers to kept inputs; None for one that holds its
    input."""
    if data[:1] != RUN:
        return None
    first, count = data[1:].decode().split(":")[:2]
    return int(first), int(count)


def memory_of(data: bytes) -> float | None:
    """The memory (GB) an item queued by grown_input asks for; None for any other."""
    if data[:1] != RUN:
        return None
    parts = data[1:].decode().split(":")
    return float(parts[2]) if len(parts) > 2 else None


class KeptInputs:
    """A job's input pages as one node reads them: each page once, the last few kept."""

    def __init__(self, store: Store, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        self._pages: OrderedDict[int, tuple[int, list[bytes]]] = OrderedDict()
        """Pages read, by the index of their last input: their first input's index, and
        each input in turn as a queue item holds it (INLINE and its arguments, or
        IN_BLOB and its blob key)."""

    async def run(self, first: int, count: int) -> list[Item]:
        """The inputs of a run, as items of their own: (index, INLINE/IN_BLOB data). A run
        may span pages."""
        inputs: list[bytes] = []
        at, end = first, first + count
        while at < end:
            start, page = await self._page_of(at)
            inputs += page[at - start : end - start]
            at = start + len(page)
        ids = map(str, range(first, end))
        return list(zip(ids, inputs, strict=True))

    async def _page_of(self, index: int) -> tuple[int, list[bytes]]:
        for last, (start, page) in self._pages.items():
            if start <= index <= last:
                self._pages.move_to_end(last)
                return start, page
        after = page_key(self.job_id, index - 1) if index > 0 else ""
        found = await self.store.list(inputs_prefix(self.job_id), after=after, limit=1)
        if not found:
            raise NotFoundError(f"job {self.job_id} keeps no page with input {index}")
        data = found[0].data
        rows = list(
            wire.results_in_row(data["indices"], data["kinds"], data["sizes"], data["payload"])
        )
        start, last = rows[0][0], rows[-1][0]
        if [at for at, _, _ in rows] != list(range(start, last + 1)):
            raise NotFoundError(
                f"job {self.job_id} keeps input {index} in a page whose inputs do not follow "
                "one another"
            )
        page = [(IN_BLOB if kind == BLOB_KIND else INLINE) + payload for _, kind, payload in rows]
        self._pages[last] = (start, page)
        if len(self._pages) > PAGES_KEPT:
            self._pages.popitem(last=False)
        return start, page
