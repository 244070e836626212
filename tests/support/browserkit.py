"""Helpers shared by the browser tests: demo accounts, viewport sizes, login, screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DEMO_PASSWORDS = {"admin": "demo-admin-pw", "alice": "demo-alice-pw", "bob": "demo-bob-pw"}
WIDE = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def login(page: Any, username: str, password: str | None = None, *, keyboard: bool = False) -> None:
    """Log in through the login page; with keyboard=True only keys are pressed."""
    page.goto("/login")
    password = password if password is not None else DEMO_PASSWORDS[username]
    if keyboard:
        page.locator("input[name=username]").focus()
        page.keyboard.type(username)
        page.keyboard.press("Tab")
        page.keyboard.type(password)
        with page.expect_navigation():
            page.keyboard.press("Enter")
    else:
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("form[action='/login'] button[type=submit]")
    assert "/login" not in page.url, f"login as {username!r} failed"


def screenshot(page: Any, name: str, backend: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}-{backend}.png"
    # caret="initial": hiding the caret would inject a <style>, which our CSP (rightly) blocks.
    page.screenshot(path=str(path), full_page=False, caret="initial")
    return path
