"""How Compute Engine's list calls pick and page resources: the `filter` expression in both
documented forms, `orderBy`, `maxResults` and `pageToken`.

Filters, as the API reference describes them:

- AIP-160: comparisons `FIELD OP VALUE`, OP one of = != > < <= >= :, VALUE a word or a
  quoted string; `FIELD:*` tests that a field is set; `:` matches substrings of strings.
  Comparisons may be parenthesized and joined by AND (also implied by a space) and OR; as in
  AIP-160, OR binds tighter than AND. Nested fields by dots: `labels.owner = "x"`.
- Regular expressions: `FIELD eq LITERAL` or `FIELD ne LITERAL` alone, unparenthesized, or
  one or more parenthesized such expressions; the literal (quoted or not) must match the
  whole field (RE2 syntax; Python's re stands in for it).

The two forms cannot be mixed. Not modelled: NOT and `-`, wildcards in AIP-160 values,
and comparisons of timestamps as times (they compare as text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from tests.fakes.compute_replies import Json, Reply, api_error, invalid

Match = Callable[[Json], bool]

_REGEX_TERM = r"""([\w.-]+)\s+(eq|ne)\s+("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^)]*?)"""
_TOKEN = re.compile(
    r"""\s*(?:(?P<paren>[()])|(?P<op>!=|<=|>=|=|<|>|:)|(?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<word>[^\s()=!<>:"']+))"""
)


class FilterError(ValueError):
    """A filter expression the API would refuse."""


def list_filter(text: str) -> Match:
    """What a `filter` query parameter selects; FilterError when the API would refuse it."""
    text = text.strip()
    if not text:
        return lambda _resource: True
    if re.match(r"\(?\s*[\w.-]+\s+(eq|ne)\s", text):
        return _regex_filter(text)
    parser = _Parser(text)
    match = parser.expression()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek()!r}")
    return match


def list_reply(
    kind: str, self_link: str, resources: list[Json], query: dict[str, str], page_limit: int
) -> Reply:
    """A list call's answer: the resources the query's filter selects, in its order, one
    page of at most maxResults (and page_limit), and the token of the next page."""
    try:
        match = list_filter(query.get("filter", ""))
    except FilterError as error:
        return invalid("filter", query["filter"], f"Invalid list filter expression ({error}).")
    order = query.get("orderBy", "name")
    if order not in ("name", "creationTimestamp desc"):
        return invalid("orderBy", order, "Only name and creationTimestamp desc are supported.")
    try:
        page_size = int(query.get("maxResults", "500"))
        offset = int(query.get("pageToken", "0"))
    except ValueError:
        return api_error(400, "invalid", "maxResults and pageToken must be numbers.")
    if not 0 <= page_size <= 500:
        return invalid("maxResults", str(page_size), "Must be between 0 and 500.")
    page_size = min(page_size or 500, page_limit)
    selected = sorted((r for r in resources if match(r)), key=lambda r: r["name"])
    if order != "name":
        selected.sort(key=lambda r: r["creationTimestamp"], reverse=True)
    page = selected[offset : offset + page_size]
    reply: Json = {"kind": kind, "id": self_link.split("/v1/", 1)[-1], "selfLink": self_link}
    if page:
        reply["items"] = page
    if offset + page_size < len(selected):
        reply["nextPageToken"] = str(offset + page_size)
    return 200, reply


def _field(resource: Json, path: str) -> Any:
    """A nested field's value, or None when it is not set."""
    value: Any = resource
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _unquote(literal: str) -> str:
    if len(literal) >= 2 and literal[0] == literal[-1] and literal[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", literal[1:-1])
    return literal


def _regex_filter(text: str) -> Match:
    single = re.fullmatch(r"([\w.-]+)\s+(eq|ne)\s+(.*)", text, re.DOTALL)
    if single and not text.startswith("("):
        terms = [single.groups()]
    else:
        terms = re.findall(r"\(\s*" + _REGEX_TERM + r"\s*\)", text)
        if re.sub(r"\(\s*" + _REGEX_TERM + r"\s*\)", "", text).strip() or not terms:
            raise FilterError("regular expression filters are FIELD eq|ne LITERAL terms")
    checks: list[tuple[str, bool, re.Pattern[str]]] = []
    for path, operator, literal in terms:
        try:
            checks.append((path, operator == "eq", re.compile(_unquote(literal.strip()))))
        except re.error as error:
            raise FilterError(f"bad regular expression {literal!r}: {error}") from error

    def match(resource: Json) -> bool:
        for path, wanted, pattern in checks:
            value = _field(resource, path)
            found = value is not None and pattern.fullmatch(_text(value)) is not None
            if found != wanted:
                return False
        return True

    return match


def _compare(value: Any, operator: str, wanted: str) -> bool:
    """One AIP-160 comparison of a field's value (any element, for a list)."""
    if operator == ":" and wanted == "*":
        return value is not None and value != [] and value != {}
    if isinstance(value, list):
        return any(_compare(item, operator, wanted) for item in value)
    if value is None or isinstance(value, dict):
        return operator == "!="
    text = _text(value)
    if operator == ":":
        return wanted in text
    if operator in ("=", "!="):
        return (text == wanted) == (operator == "=")
    try:
        order = _order(float(text), float(wanted))
    except ValueError:
        order = _order(text, wanted)
    return order in _ORDERS[operator]


class _Parser:
    """AIP-160 expressions: `and := or {[AND] or}`, `or := term {OR term}`,
    `term := "(" and ")" | FIELD OP VALUE`."""

    def __init__(self, text: str) -> None:
        self._tokens = list(self._tokenize(text))
        self._at = 0

    @staticmethod
    def _tokenize(text: str) -> Iterator[str]:
        at = 0
        while text[at:].strip():
            found = _TOKEN.match(text, at)
            if found is None or found.end() == at:
                raise FilterError(f"cannot read {text[at:]!r}")
            yield found.group(found.lastgroup or "word")
            at = found.end()

    def peek(self) -> str | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self) -> str:
        token = self.peek()
        if token is None:
            raise FilterError("the expression ends too soon")
        self._at += 1
        return token

    def expression(self) -> Match:
        terms = [self._any()]
        while self.peek() not in (None, ")"):
            if self.peek() == "AND":
                self._take()
            terms.append(self._any())
        return lambda resource: all(term(resource) for term in terms)

    def _any(self) -> Match:
        terms = [self._term()]
        while self.peek() == "OR":
            self._take()
            terms.append(self._term())
        return lambda resource: any(term(resource) for term in terms)

    def _term(self) -> Match:
        if self.peek() == "(":
            self._take()
            inner = self.expression()
            if self._take() != ")":
                raise FilterError("a parenthesis is not closed")
            return inner
        path, operator, value = self._take(), self._take(), self._take()
        if not re.fullmatch(r"[A-Za-z][\w.-]*", path) or operator not in _OPERATORS:
            raise FilterError(f"{path} {operator} {value} is not FIELD OP VALUE")
        wanted = _unquote(value)
        return lambda resource: _compare(_field(resource, path), operator, wanted)


_OPERATORS = ("=", "!=", ">", "<", "<=", ">=", ":")


def _order(left: Any, right: Any) -> int:
    """-1, 0 or 1 as left is below, equal to or above right."""
    return int(left > right) - int(left < right)


_ORDERS = {"<": {-1}, "<=": {-1, 0}, ">": {1}, ">=": {0, 1}}
