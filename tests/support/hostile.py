"""Hostile text for the browser tests: markup and script that must be shown, never run.

Every string is stored as data (prompts, responses, guidelines, project names, usernames) and
the page must render it literally: the element's textContent equals the input, nothing
executes (no dialog, no page error) and the Content-Security-Policy is never violated.
No NUL characters (PostgreSQL text refuses them) and no carriage returns (the HTML parser turns
CRLF into LF, so textContent could not equal the input).
"""

from __future__ import annotations

# Short enough for a username (64) or a project name (200); each one tries a different door.
SCRIPT_TAG = '<script>alert("xss-script")</script>'
EVENT_HANDLER = "<img src=x onerror=alert('xss-img')><body onload=alert(1)>"
AUTOFOCUS = "<input autofocus onfocus=\"alert('xss-focus')\">"
JAVASCRIPT_URL = "<a href=\"javascript:alert('xss-js-url')\">click</a>"
DATA_URL = '<iframe src="data:text/html,<script>alert(1)</script>"></iframe>'
SVG_SCRIPT = "<svg onload=alert('xss-svg')><script>alert(2)</script></svg>"
UNBALANCED = "</textarea></p></div></main><b><i>unclosed <!-- open comment"
ATTR_BREAKOUT = "\"'><script>alert(3)</script>{{ 7*7 }}{% raw %}${7*7}"
RTL_OVERRIDE = "invoice\u202egpj.exe\u202c end \u2067isolated\u2069 done"
EMOJI_COMBINING = (
    "\U0001f642 \U0001f469\U0001f3fd\u200d\U0001f4bb Z\u0324\u0354\u0367\u0311a\u0308\u0356 e\u0301"
)

SHORT: dict[str, str] = {
    "script": SCRIPT_TAG,
    "event_handler": EVENT_HANDLER,
    "autofocus": AUTOFOCUS,
    "javascript_url": JAVASCRIPT_URL,
    "data_url": DATA_URL,
    "svg": SVG_SCRIPT,
    "unbalanced": UNBALANCED,
    "attr_breakout": ATTR_BREAKOUT,
    "rtl": RTL_OVERRIDE,
    "emoji": EMOJI_COMBINING,
}

# A prompt carrying every trick at once, on separate lines (line breaks must survive).
PROMPT = "Please summarise:\n" + "\n".join(SHORT.values()) + "\n\n  indented line\ttab"

# Markdown-level attacks for the guidelines: raw HTML (disabled), link schemes, images.
GUIDELINES = "\n\n".join(
    [
        "# Guidelines " + SCRIPT_TAG,
        "Raw HTML stays text: " + EVENT_HANDLER + " " + SVG_SCRIPT,
        "[js link](javascript:alert('md-js')) and [data link](data:text/html;base64,"
        "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) and [vb](vbscript:msgbox(1))",
        "![img](javascript:alert('md-img')) <http://example.com/ok>",
        "<div onclick=alert(4)>",
        UNBALANCED,
        RTL_OVERRIDE + " " + EMOJI_COMBINING,
    ]
)

# Usernames are restricted by the account rules; these are inserted directly into the
# database so that the page's escaping is tested even if those rules change.
USERNAMES = ["<b>x</b>'\"<script>alert(5)</script>", "\u202eevil\u202c\U0001f642"]

PROJECT_NAME = "Project " + SVG_SCRIPT + " " + RTL_OVERRIDE + " " + EMOJI_COMBINING


def big_answer(size: int = 200 * 1024) -> str:
    """An answer of `size` characters made of every hostile line, repeated."""
    unit = "\n".join(SHORT.values()) + "\n"
    text = unit * (size // len(unit) + 1)
    return text[:size]
