"""A minimal HTML tree for reading figures out of rendered pages in tests (stdlib only)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str | None) -> list[Node]:
        """Descendants with the tag and attributes (value None: the attribute is present;
        `class_` matches one class name)."""
        found = []
        for node in self.walk():
            if tag is not None and node.tag != tag:
                continue
            ok = True
            for name, want in attrs.items():
                if name == "class_":
                    ok = want in node.attrs.get("class", "").split()
                elif want is None:
                    ok = name.replace("_", "-") in node.attrs
                else:
                    ok = node.attrs.get(name.replace("_", "-")) == want
                if not ok:
                    break
            if ok:
                found.append(node)
        return found

    def one(self, tag: str | None = None, **attrs: str | None) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    @property
    def text(self) -> str:
        parts: list[str] = []
        for child in self.children:
            parts.append(child if isinstance(child, str) else child.text)
        return re.sub(r"\s+", " ", "".join(parts)).strip()

    def cells(self) -> list[str]:
        """Texts of the th/td children of a table row."""
        return [c.text for c in self.children if isinstance(c, Node) and c.tag in ("td", "th")]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for k in range(len(self.stack) - 1, 0, -1):
            if self.stack[k].tag == tag:
                del self.stack[k:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def rows_of(root: Node, table_class: str) -> list[list[str]]:
    """Body rows of the table with that class, as cell texts."""
    table = root.one("table", class_=table_class)
    body = table.find_all("tbody") or [table]
    return [tr.cells() for tr in body[0].find_all("tr")]


def where(predicate: Callable[[Node], bool], root: Node) -> list[Node]:
    return [n for n in root.walk() if predicate(n)]
