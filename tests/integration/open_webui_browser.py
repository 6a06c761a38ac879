"""Drive the real Open WebUI (0.11) in headless Chromium the way a student would: log in, open
the model picker, chat. Used by the end-to-end tests; every failure becomes a
BrowserCheckFailed that says what the student would see and where the screenshot of it is.

    with open_webui_session(url, email, password, tmp_path) as ui:
        assert "Qwen/Qwen2.5-1.5B-Instruct" in ui.models_in_picker()
        answer = ui.chat("Qwen/Qwen2.5-1.5B-Instruct", "hello")  # Answer(text=..., model=...)
        ui.screenshot("answer-in-chat")

Chromium is Debian's (`/usr/bin/chromium`, or `$ICC_CHROMIUM`), driven by Playwright's sync
API, with everything that would phone home switched off: the browser only talks to base_url. The
tests start it inside the sandbox's network namespace, where the Services' ClusterIPs are.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

CHROMIUM = os.environ.get("ICC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",  # tests run as root, where Chromium's own sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)


def resolver_rule(base_url: str) -> str:
    """Chromium resolves only Open WebUI's own host: nothing else may be looked up (the
    machine's resolver is not on loopback)."""
    return f"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE {urlsplit(base_url).hostname}"


VIEWPORT = {"width": 1280, "height": 800}
PAGE_TIMEOUT_S = 30  # a page load or one click on a loaded 2-core machine
PICKER_TIMEOUT_S = 20  # the model list comes from TGI's /v1/models through Open WebUI
ANSWER_TIMEOUT_S = 60

# Selectors of Open WebUI 0.11's chat page (read from its rendered DOM).
MODEL_BUTTON = "#model-selector-model-button"
MODEL_OPTION = '[role="listbox"][aria-label="Available models"] [role="option"]'
NO_MODELS = "text=No models available"
ASSISTANT_MESSAGE = 'div[id^="message-"]:has(.chat-assistant)'
ANSWER_TEXT = "#response-content-container .markdown-prose"
ANSWER_ERROR = "#response-content-container > div.rounded-2xl"  # the grey box with an (i) icon
ANSWER_DONE = 'button[aria-label="Regenerate"]'  # the action row appears once a reply is final
ERROR_TOAST = '[data-sonner-toast][data-type="error"]'
RELEASE_NOTES_OK = "Okay, Let's Go!"  # the button that closes the "What's New" modal


class BrowserCheckFailed(AssertionError):
    """What the student would see went wrong, and the screenshot that shows it."""


@dataclass(frozen=True)
class Answer:
    text: str
    model: str | None  # the model name Open WebUI labels the reply with, if it shows one


class OpenWebUISession:
    """A logged-in Open WebUI tab; made by open_webui_session()."""

    def __init__(self, page: Page, base_url: str, artefacts_dir: Path):
        self.page, self.base_url, self.artefacts_dir = page, base_url.rstrip("/"), artefacts_dir

    def screenshot(self, name: str) -> Path:
        """Save the page as <artefacts_dir>/<name>.png and return that path."""
        self.artefacts_dir.mkdir(parents=True, exist_ok=True)
        path = self.artefacts_dir / f"{name}.png"
        if self.page.get_by_role("button", name=RELEASE_NOTES_OK).is_visible():
            self.page.get_by_role("button", name=RELEASE_NOTES_OK).click()  # not in the picture
        self.page.screenshot(path=str(path))
        return path

    def models_in_picker(self) -> list[str]:
        """The model names the picker of a new chat offers, without Open WebUI's Arena Model."""
        with self._step("opening the model picker"):
            self._new_chat()
            offered = self._open_picker()
            self.page.keyboard.press("Escape")
            return [name for _, name in offered]

    def chat(self, model_id: str, message: str, timeout: float = ANSWER_TIMEOUT_S) -> Answer:
        """Send `message` (one line: Enter sends) to `model_id` in a new chat; the reply shown.

        `model_id` may also be the name the picker shows. Fails if the picker lacks the model,
        the reply is an error, or no complete reply comes within `timeout` seconds."""
        with self._step(f"chatting with {model_id!r}"):
            self._new_chat()
            offered = self._open_picker()
            ident, name = next(((i, n) for i, n in offered if model_id in (i, n)), (None, None))
            if ident is None:
                self._fail(
                    f"no model {model_id!r} in the model picker (it offers: {_listed(offered)})"
                )
            # Search narrows the list, so the option is rendered even in a long, virtualised list.
            self.page.get_by_placeholder("Search a model").fill(model_id)
            self.page.locator(f'{MODEL_OPTION}[data-value="{ident}"]').click()
            selected = self.page.locator(f'{MODEL_BUTTON}[aria-label="Selected model: {name}"]')
            selected.wait_for(timeout=5000)
            chat_input = self.page.locator("#chat-input")
            chat_input.click()
            self.page.keyboard.type(message)
            self.page.keyboard.press("Enter")
            return self._wait_for_answer(model_id, name, timeout)

    def _wait_for_answer(self, model_id: str, name: str, timeout: float) -> Answer:
        reply = self.page.locator(ASSISTANT_MESSAGE).last
        deadline = time.monotonic() + timeout
        # Polled rather than awaited: the reply ends as text, an error box, an error toast, or
        # (Open WebUI 0.11 with TGI's empty-bodied 401) an empty reply that never finishes.
        while time.monotonic() < deadline:
            if reply.locator(ANSWER_ERROR).count():
                self._fail(f"{model_id!r} answered with an error: {_text(reply, ANSWER_ERROR)}")
            if self.page.locator(ERROR_TOAST).count():
                self._fail(f"chatting with {model_id!r} showed: {_text(self.page, ERROR_TOAST)}")
            if reply.locator(ANSWER_DONE).count():
                text = "\n".join(t.strip() for t in reply.locator(ANSWER_TEXT).all_inner_texts())
                label = reply.locator("#response-message-model-name")
                model = label.first.inner_text().strip() if label.count() else None
                if not text:
                    self._fail(f"{model_id!r} gave an empty answer (and no error)")
                if model is not None and model not in (model_id, name):
                    self._fail(f"the answer is labelled {model!r}, not {model_id!r}")
                return Answer(text=text, model=model)
            self.page.wait_for_timeout(250)
        partial = "\n".join(reply.locator(ANSWER_TEXT).all_inner_texts()).strip()
        # Open WebUI 0.11 turns TGI's 401 (wrong API key, empty body) into exactly this silence.
        seen = (
            f"only {partial[:200]!r} so far"
            if partial
            else "the answer stays empty and no error is shown, as when TGI refuses the API key"
        )
        self._fail(f"no complete answer from {model_id!r} within {timeout:.0f} s ({seen})")

    def _new_chat(self) -> None:
        self.page.goto(self.base_url + "/")
        self.page.locator("#chat-input").wait_for()

    def _open_picker(self) -> list[tuple[str, str]]:
        """Open the picker; (model id, shown name) of every option, as a student sees them (the
        role turns Open WebUI's "Arena Model" off: it would be offered too)."""
        self.page.locator(MODEL_BUTTON).click()
        options = self.page.locator(MODEL_OPTION)
        options.or_(self.page.locator(NO_MODELS)).first.wait_for(timeout=PICKER_TIMEOUT_S * 1000)
        offered = []
        for option in options.all():
            ident = option.get_attribute("data-value") or ""
            name = option.locator(".line-clamp-1").first.inner_text().strip()
            offered.append((ident, name))
        return offered

    def _log_in(self, email: str, password: str) -> None:
        with self._step("logging in"):
            self.page.goto(self.base_url + "/auth")
            self.page.locator('input[type="email"]').fill(email)
            self.page.locator('input[type="password"]').fill(password)
            self.page.locator('button[type="submit"]').click()
            chat_input, toast = self.page.locator("#chat-input"), self.page.locator(ERROR_TOAST)
            chat_input.or_(toast).first.wait_for()
            if toast.count():
                self._fail(f"logging in as {email} failed: {_text(self.page, ERROR_TOAST)}")

    @contextmanager
    def _step(self, doing: str) -> Iterator[None]:
        """Turn Playwright's timeouts and errors into a BrowserCheckFailed with a screenshot."""
        try:
            yield
        except PlaywrightError as error:
            self._fail(f"{doing} timed out or failed: {error.message.splitlines()[0]}")

    def _fail(self, problem: str) -> NoReturn:
        self.artefacts_dir.mkdir(parents=True, exist_ok=True)
        n = 1
        while (self.artefacts_dir / f"failure-{n}.png").exists():
            n += 1
        try:
            shot = f"screenshot: {self.screenshot(f'failure-{n}')}"
        except PlaywrightError as error:  # a crashed page still deserves the problem's text
            shot = f"no screenshot ({error.message.splitlines()[0]})"
        raise BrowserCheckFailed(f"{problem} [{shot}]")


@contextmanager
def open_webui_session(
    base_url: str,
    email: str,
    password: str,
    artefacts_dir: Path | str,
    executable: str = CHROMIUM,
) -> Iterator[OpenWebUISession]:
    """Start Chromium (`executable`: a program that runs it, with Playwright's arguments), log
    in to Open WebUI at base_url, yield the session; Chromium is closed on the way out,
    whatever happened."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, resolver_rule(base_url)],
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            # Only Open WebUI itself: any other request (a font, an update check) is dropped.
            origin = base_url.rstrip("/")
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith((origin + "/", "data:", "blob:"))
                    or route.request.url == origin
                    else route.abort()
                ),
            )
            page.set_default_timeout(PAGE_TIMEOUT_S * 1000)
            page.set_default_navigation_timeout(PAGE_TIMEOUT_S * 1000)
            # The "What's New" modal comes once per user and version, a moment after login, and
            # blocks every click: Playwright dismisses it whenever it shows up before an action.
            release_notes = page.get_by_role("button", name=RELEASE_NOTES_OK)
            page.add_locator_handler(release_notes, lambda button: button.click())
            session = OpenWebUISession(page, base_url, Path(artefacts_dir))
            session._log_in(email, password)
            yield session
        finally:
            browser.close()


def _listed(offered: list[tuple[str, str]]) -> str:
    return ", ".join(repr(name) for _, name in offered) or "none"


def _text(scope, selector: str) -> str:
    return " ".join(scope.locator(selector).first.inner_text().split())
