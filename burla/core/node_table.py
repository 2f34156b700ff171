"""The cluster's nodes by id, indexed by node type and state.

A cluster of 10,000 nodes asks on almost every event how many nodes of a type are idle
or booting; counting them anew each time made each event cost as much as the cluster is
big. The table keeps the ids of each (node type, state) as nodes are put and removed,
so those questions cost nothing.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, MutableMapping, Set, ValuesView

from burla.core.models import Node, NodeState

_NONE: frozenset[str] = frozenset()


class NodeTable(MutableMapping[str, Node]):
    """A dict of nodes by id that knows which ids are in each (type name, state)."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._ids: dict[tuple[str, NodeState], set[str]] = {}

    def __getitem__(self, node_id: str) -> Node:
        return self._nodes[node_id]

    def __setitem__(self, node_id: str, node: Node) -> None:
        old = self._nodes.get(node_id)
        if old is not None:
            self._ids[old.node_type.name, old.state].discard(node_id)
        self._nodes[node_id] = node
        self._ids.setdefault((node.node_type.name, node.state), set()).add(node_id)

    def __delitem__(self, node_id: str) -> None:
        node = self._nodes.pop(node_id)
        self._ids[node.node_type.name, node.state].discard(node_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    # The dict's own views: set operations on them run in C, not in collections.abc.
    def keys(self) -> KeysView[str]:
        return self._nodes.keys()

    def values(self) -> ValuesView[Node]:
        return self._nodes.values()

    def items(self) -> ItemsView[str, Node]:
        return self._nodes.items()

    def ids(self, type_name: str, state: NodeState) -> Set[str]:
        """The ids of the nodes of this type in this state (a live view: copy to keep)."""
        return self._ids.get((type_name, state), _NONE)

    def count(self, type_name: str, state: NodeState) -> int:
        return len(self.ids(type_name, state))

    def counts(self) -> dict[tuple[str, NodeState], int]:
        """How many nodes there are of each (type name, state) that has any."""
        return {key: len(ids) for key, ids in self._ids.items() if ids}

    def any_in(self, state: NodeState) -> bool:
        return any(ids for (_, in_state), ids in self._ids.items() if in_state is state)

    def in_state(self, state: NodeState) -> list[str]:
        """The ids of the nodes in this state, of every type."""
        return [i for (_, in_state), ids in self._ids.items() if in_state is state for i in ids]

    def check(self) -> str | None:
        """What is wrong with the index, or None: each node is filed once, under its own
        type and state."""
        filed = sum(len(ids) for ids in self._ids.values())
        if filed != len(self._nodes):
            return f"{filed} ids indexed for {len(self._nodes)} nodes"
        for (type_name, state), ids in self._ids.items():
            for node_id in ids:
                node = self._nodes.get(node_id)
                if node is None or (node.node_type.name, node.state) != (type_name, state):
                    return f"{node_id} is indexed as a {state} {type_name} node"
        return None
