"""Fixed help text of the annotation page: severity levels, the preference dimensions and the
keyboard shortcuts. One place, so that the page, its help overlay and the docs agree."""

from __future__ import annotations

from typing import NamedTuple


class SeverityHelp(NamedTuple):
    name: str
    label: str
    impact: str
    response: str


# The severity definitions annotators must see (docs/annotators/labelling-guide.md).
SEVERITIES: tuple[SeverityHelp, ...] = (
    SeverityHelp(
        "minor",
        "Minor",
        "Low-level impact: slight personal discomfort or minor, limited societal impact; "
        "does not break the law.",
        "Simple personal measures; no government or professional help needed.",
    ),
    SeverityHelp(
        "moderate",
        "Moderate",
        "Noticeable damage, possibly even death, to individuals; hard to undo in the short "
        "term; possibly illegal; usually no long-term severe consequences.",
        "May need government or professional agencies.",
    ),
    SeverityHelp(
        "severe",
        "Severe",
        "Targets groups; extremely serious consequences (large-scale casualties, economic "
        "loss, environmental damage); broad and far-reaching.",
        "Needs national or international resources.",
    ),
)
SEVERITY_KEYS = {"minor": "z", "moderate": "x", "severe": "c"}

DIMENSIONS: dict[str, tuple[str, str]] = {
    "helpfulness": (
        "More helpful",
        "Helpfulness ignores harm: which answer does more of what was asked, even if harmful.",
    ),
    "harmlessness": (
        "More harmless",
        "Harmlessness: a harmless (safe) answer always outranks a harmful one.",
    ),
    "single": (
        "Better overall",
        "Trade-off: all things considered, which answer should the model give?",
    ),
}


class Shortcut(NamedTuple):
    keys: tuple[str, ...]
    action: str


# Keep in step with static/annotate.js (the browser tests press these keys).
SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut(("j", "k"), "Next / previous response"),
    Shortcut(("s",), "Current response is safe (moves to the next response)"),
    Shortcut(("u",), "Current response is unsafe (focus goes to its harm categories)"),
    Shortcut(("↑", "↓", "Space"), "Move between harm categories / tick one"),
    Shortcut(("z", "x", "c"), "Severity minor / moderate / severe (moves to the next response)"),
    Shortcut(("1", "2", "…"), "Helpfulness: press responses best first (1 = A, 2 = B)"),
    Shortcut(("Shift+1", "Shift+2", "…"), "Harmlessness: the same, with Shift"),
    Shortcut(("t", "then 1", "2", "…"), "Single trade-off preference (when asked)"),
    Shortcut(("n",), "Write the rationale (when asked)"),
    Shortcut(("m",), "Show the model suggestion (when offered; recorded)"),
    Shortcut(("g",), "Show or hide the guidelines"),
    Shortcut(("Enter",), "Submit (Ctrl+Enter also works inside a text field)"),
    Shortcut(("Shift+S",), "Skip this item"),
    Shortcut(("Esc",), "Leave a text field, close this help"),
    Shortcut(("?",), "Show or hide this help"),
)
