"""A minimal Chrome DevTools Protocol client: headless Debian chromium driven over a loopback websocket.

Just enough for the browser test: open a page, evaluate expressions, and
record every network request, console message, log entry and dialog.
Chromium runs in its own process group and is always killed on exit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

_WS = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium_path() -> str:
    """Debian's chromium (scripts/setup.sh installs it); the test fails loudly if it is missing."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("chromium is not installed: run scripts/setup.sh (apt-get install chromium)")
    return path


@dataclass
class Page:
    ws: aiohttp.ClientWebSocketResponse
    session: str
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[int, asyncio.Future[Any]] = field(default_factory=dict)

    async def send(self, method: str, params: dict[str, Any] | None = None, *, browser: bool = False) -> Any:
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if not browser:
            msg["sessionId"] = self.session
        await self.ws.send_str(json.dumps(msg))
        return await asyncio.wait_for(fut, 20)

    async def evaluate(self, expression: str) -> Any:
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} raised: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"browser: {expression!r} stayed falsy for {timeout} s")
            await asyncio.sleep(0.1)

    def dispatch(self, msg: dict[str, Any]) -> None:
        if "id" in msg:
            fut = self._waiting.pop(msg["id"], None)
            if fut is not None and not fut.done():
                if "error" in msg:
                    fut.set_exception(RuntimeError(f"CDP error: {msg['error']}"))
                else:
                    fut.set_result(msg.get("result", {}))
            return
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded":
            self.console.append(params["entry"]["text"])
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))


@asynccontextmanager
async def browser_page(timeout: float = 30.0) -> AsyncIterator[Page]:
    """A fresh headless chromium (temporary profile) and one attached page with events on."""
    profile = Path(tempfile.mkdtemp(prefix="ratchet-chromium-"))
    argv = [chromium_path(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    reader: asyncio.Task[None] | None = None
    try:
        ws_url = await asyncio.wait_for(asyncio.to_thread(_read_ws_url, proc), timeout)
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=64 * 2**20) as ws:
            page = Page(ws, "")
            reader = asyncio.get_running_loop().create_task(_read(ws, page))
            target = await page.send("Target.createTarget", {"url": "about:blank"}, browser=True)
            attached = await page.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                                       browser=True)
            page.session = attached["sessionId"]
            for domain in ("Page", "Network", "Runtime", "Log"):
                await page.send(f"{domain}.enable")
            yield page
    finally:
        if reader is not None:
            reader.cancel()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(profile, ignore_errors=True)


def _read_ws_url(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        m = _WS.search(line)
        if m:
            # keep draining stderr so chromium never blocks on a full pipe
            threading_drain(proc)
            return m.group(1).decode()
    raise RuntimeError(f"chromium exited before DevTools started: {b''.join(seen[-20:]).decode(errors='replace')}")


def threading_drain(proc: subprocess.Popen[bytes]) -> None:
    import threading

    def drain() -> None:
        assert proc.stderr is not None
        try:
            for _ in proc.stderr:
                pass
        except (OSError, ValueError):
            pass

    threading.Thread(target=drain, daemon=True).start()


async def _read(ws: aiohttp.ClientWebSocketResponse, page: Page) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            page.dispatch(json.loads(msg.data))
