"""The fake Compute Engine API's firewall rules (global, one set per project): their
validation, defaults and resource shape, after Compute Engine's `firewalls` reference.

A rule is taken when its name is an RFC 1035 name; its network a full or partial URL of a
network (`global/networks/default` when not given; any network is taken to exist); its
priority 0-65535 (1000 when not given); direction INGRESS or EGRESS (INGRESS when not
given); it has `allowed` or `denied` entries, not both, each with an IPProtocol (tcp, udp,
icmp, esp, ah, sctp, ipip, all, or a number 0-255) and ports ("N" or "N-M", 0-65535) only for
tcp, udp and sctp; its ranges are CIDRs, IPv4 or IPv6 but not both; its tags RFC 1035 names;
sourceTags only on INGRESS rules; service accounts not with tags of the same kind. An
INGRESS rule with no source gets sourceRanges 0.0.0.0/0, an EGRESS rule with no destination
destinationRanges 0.0.0.0/0, as Compute Engine does. Rules carry no labels (the API has
none for them). Changes show at once; their global operation is DONE shortly after.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tests.fakes.compute_lists import list_reply
from tests.fakes.compute_operations import Operations
from tests.fakes.compute_replies import (
    NAME,
    SELF,
    Json,
    Reply,
    already_exists,
    api_error,
    invalid,
    not_found,
    required,
    timestamp,
)

_INPUT_FIELDS = {
    "name", "description", "network", "priority", "sourceRanges", "destinationRanges",
    "sourceTags", "targetTags", "sourceServiceAccounts", "targetServiceAccounts", "allowed",
    "denied", "direction", "logConfig", "disabled", "params",
}  # fmt: skip
_OUTPUT_FIELDS = {"kind", "id", "creationTimestamp", "selfLink"}
"""Output-only fields, which a request may carry (a rule read, changed and sent back)."""
_PROTOCOLS = {"tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all"}
_PORTED = {"tcp", "udp", "sctp"}
_NETWORK = re.compile(
    r"(?:(?:https://www\.googleapis\.com|https://compute\.googleapis\.com)/compute/v1/)?"
    r"(?:projects/(?P<project>[^/]+)/)?global/networks/(?P<name>[^/]+)"
)
_PORTS = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")
_ANYWHERE = "0.0.0.0/0"


class Firewalls:
    """Every project's firewall rules; each method runs under `lock`, the fake API's.
    `finish_later` marks an operation DONE from another thread."""

    def __init__(
        self,
        lock: threading.Condition,
        operations: Operations,
        ids: Iterator[int],
        finish_later: Callable[[Json], None],
    ) -> None:
        self._lock = lock
        self._operations = operations
        self._ids = ids
        self._finish_later = finish_later
        self._rules: dict[tuple[str, str], Json] = {}

    def insert(self, project: str, body: Json) -> Reply:
        refusal = _unknown_fields(body) or _problem(body, project)
        if refusal:
            return refusal
        name = body["name"]
        if (project, name) in self._rules:
            return already_exists(f"projects/{project}/global/firewalls/{name}")
        rule = _with_defaults(body, project)
        rule.update(
            kind="compute#firewall",
            id=str(next(self._ids)),
            creationTimestamp=timestamp(),
            selfLink=f"{SELF}/projects/{project}/global/firewalls/{name}",
        )
        self._rules[(project, name)] = rule
        return self._changed(project, rule, "insert")

    def get(self, project: str, name: str) -> Reply:
        rule = self._rules.get((project, name))
        if rule is None:
            return not_found(f"projects/{project}/global/firewalls/{name}")
        return 200, copy.deepcopy(rule)

    def list(self, project: str, query: dict[str, str], page_limit: int) -> Reply:
        rules = [copy.deepcopy(rule) for (p, _), rule in self._rules.items() if p == project]
        link = f"{SELF}/projects/{project}/global/firewalls"
        return list_reply("compute#firewallList", link, rules, query, page_limit)

    def delete(self, project: str, name: str) -> Reply:
        rule = self._rules.pop((project, name), None)
        if rule is None:
            return not_found(f"projects/{project}/global/firewalls/{name}")
        return self._changed(project, rule, "delete")

    def patch(self, project: str, name: str, body: Json) -> Reply:
        """JSON merge patch: the fields the body gives replace the rule's; name, network and
        direction cannot change."""
        rule = self._rules.get((project, name))
        if rule is None:
            return not_found(f"projects/{project}/global/firewalls/{name}")
        refusal = _unknown_fields(body)
        if refusal:
            return refusal
        changes = {k: v for k, v in body.items() if k not in _OUTPUT_FIELDS}
        merged = {k: v for k, v in rule.items() if k not in _OUTPUT_FIELDS} | changes
        merged = {k: v for k, v in merged.items() if v is not None}
        refusal = _problem(merged, project)
        if refusal:
            return refusal
        for fixed in ("name", "network", "direction"):
            if fixed in changes and _normal(fixed, changes[fixed], project) != rule[fixed]:
                return invalid(f"resource.{fixed}", changes[fixed], f"{fixed} cannot be changed.")
        kept = {k: rule[k] for k in _OUTPUT_FIELDS}
        self._rules[(project, name)] = rule = _with_defaults(merged, project) | kept
        return self._changed(project, rule, "patch")

    def clear(self) -> None:
        self._rules.clear()

    def _changed(self, project: str, rule: Json, kind: str) -> Reply:
        operation = self._operations.start(
            (project, None), kind, f"firewalls/{rule['name']}", rule["id"]
        )
        self._finish_later(operation)
        return 200, copy.deepcopy(operation)


def _normal(field: str, value: Any, project: str) -> Any:
    """A field as the rule keeps it (a network as its full URL)."""
    if field != "network":
        return value
    found = _NETWORK.fullmatch(str(value))
    assert found is not None, "checked by _problem"
    return f"{SELF}/projects/{found.group('project') or project}/global/networks/{found['name']}"


def _with_defaults(body: Json, project: str) -> Json:
    rule = {
        key: copy.deepcopy(value)
        for key, value in body.items()
        if key in _INPUT_FIELDS - {"params"} and value not in ([], None)
    }
    rule["network"] = _normal("network", rule.get("network", "global/networks/default"), project)
    rule.setdefault("priority", 1000)
    rule.setdefault("direction", "INGRESS")
    rule.setdefault("disabled", False)
    rule.setdefault("logConfig", {"enable": False})
    sources = ("sourceRanges", "sourceTags", "sourceServiceAccounts")
    if rule["direction"] == "INGRESS" and not any(rule.get(s) for s in sources):
        rule["sourceRanges"] = [_ANYWHERE]
    if rule["direction"] == "EGRESS" and not rule.get("destinationRanges"):
        rule["destinationRanges"] = [_ANYWHERE]
    return rule


def _unknown_fields(body: Json) -> Reply | None:
    unknown = sorted(set(body) - _INPUT_FIELDS - _OUTPUT_FIELDS)
    if unknown:
        message = (
            f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
            "'firewall_resource': Cannot find field."
        )
        return api_error(400, "invalid", message)
    return None


def _problem(rule: Json, project: str) -> Reply | None:
    """Why Compute Engine would refuse this rule, or None."""
    name = rule.get("name")
    if not name:
        return required("resource.name")
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        return invalid("resource.name", name, f"Must be a match of regex '{NAME}'")
    network = rule.get("network", "global/networks/default")
    found = _NETWORK.fullmatch(str(network))
    if found is None or not re.fullmatch(NAME, found["name"]):
        return invalid("resource.network", network, "The network must be a network's URL.")
    priority = rule.get("priority", 1000)
    if not isinstance(priority, int) or not 0 <= priority <= 65535:
        return invalid("resource.priority", priority, "Must be between 0 and 65535.")
    direction = rule.get("direction", "INGRESS")
    if direction not in ("INGRESS", "EGRESS"):
        return invalid("resource.direction", direction, "Must be INGRESS or EGRESS.")
    return (
        _entries_problem(rule)
        or _ranges_problem(rule)
        or _targets_problem(rule, direction)
        or _log_problem(rule.get("logConfig"))
    )


def _entries_problem(rule: Json) -> Reply | None:
    given = [field for field in ("allowed", "denied") if rule.get(field)]
    if not given:
        return required("resource.allowed")
    if len(given) == 2:
        why = "A rule has either allowed or denied entries, not both."
        return invalid("resource.denied", rule["denied"], why)
    for index, entry in enumerate(rule[given[0]]):
        field = f"resource.{given[0]}[{index}]"
        protocol = str(entry.get("IPProtocol", ""))
        if not protocol:
            return required(f"{field}.IPProtocol")
        if protocol not in _PROTOCOLS and not (protocol.isdigit() and int(protocol) <= 255):
            return invalid(f"{field}.IPProtocol", protocol, "Invalid IP protocol specification.")
        ports = entry.get("ports", [])
        if ports and protocol not in _PORTED:
            why = "Ports may be given only for the tcp, udp and sctp protocols."
            return invalid(f"{field}.ports", ports, why)
        for at, port in enumerate(ports):
            found = _PORTS.fullmatch(port)
            low, high = (int(found[1]), int(found[2] or found[1])) if found else (1, 0)
            if not low <= high <= 65535:
                return invalid(f"{field}.ports[{at}]", port, "Invalid port specification.")
    return None


def _ranges_problem(rule: Json) -> Reply | None:
    versions = set()
    for field in ("sourceRanges", "destinationRanges"):
        for index, text in enumerate(rule.get(field, [])):
            try:
                versions.add(ipaddress.ip_network(text, strict=False).version)
            except ValueError:
                why = "Must be an IPv4 or IPv6 CIDR range."
                return invalid(f"resource.{field}[{index}]", text, why)
    if len(versions) > 1:
        why = "A firewall rule can contain either IPv4 or IPv6 ranges, but not both."
        return invalid("resource.sourceRanges", rule.get("sourceRanges", []), why)
    return None


def _targets_problem(rule: Json, direction: str) -> Reply | None:
    for field in ("sourceTags", "targetTags"):
        for index, tag in enumerate(rule.get(field, [])):
            if not re.fullmatch(NAME, tag):
                return invalid(f"resource.{field}[{index}]", tag, f"Must match '{NAME}'.")
    for field in ("sourceServiceAccounts", "targetServiceAccounts"):
        for index, email in enumerate(rule.get(field, [])):
            if "@" not in email:
                return invalid(f"resource.{field}[{index}]", email, "Not a service account.")
    if direction == "EGRESS" and rule.get("sourceTags"):
        return invalid("resource.sourceTags", rule["sourceTags"], "Not allowed on EGRESS rules.")
    tags = rule.get("sourceTags") or rule.get("targetTags")
    for field in ("sourceServiceAccounts", "targetServiceAccounts"):
        if rule.get(field) and tags:
            why = f"{field} cannot be used at the same time as sourceTags or targetTags."
            return invalid(f"resource.{field}", rule[field], why)
    return None


def _log_problem(log_config: Json | None) -> Reply | None:
    if log_config is None:
        return None
    metadata = log_config.get("metadata")
    if metadata not in (None, "INCLUDE_ALL_METADATA", "EXCLUDE_ALL_METADATA"):
        return invalid("resource.logConfig.metadata", metadata, "Unknown metadata option.")
    if metadata and not log_config.get("enable"):
        why = "metadata can only be given when logging is enabled."
        return invalid("resource.logConfig.metadata", metadata, why)
    return None
