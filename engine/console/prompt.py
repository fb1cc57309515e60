"""Questions at the terminal, for --on-error=ask and --debug's pause before each task.

Builds run concurrently, so one question is asked at a time (a lock), each
naming its build. stdin is read through the event loop rather than a thread,
so Ctrl-C during a question stops the run at once instead of waiting for a
line that never comes. With no terminal there is nobody to ask: callers get
None and carry on as if the question had not been asked.
"""
from __future__ import annotations

import asyncio
import os
import sys
import weakref

from engine.console.events import Emitter

_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def _one_at_a_time() -> asyncio.Lock:
    return _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


async def ask(events: Emitter, question: str, choices: dict[str, str], default: str) -> str | None:
    """The key of the chosen answer (a line starting with it; an empty line is default), or None."""
    if not interactive():
        return None
    menu = ", ".join(f"[{key}] {meaning}" for key, meaning in choices.items())
    async with _one_at_a_time():
        while True:
            events.emit("prompt", msg=f"{question}  {menu} (Enter: {choices[default]})")
            answer = (await _read_line()).strip().lower()[:1] or default
            if answer in choices:
                events.emit("answer", answer=choices[answer])
                return answer


async def _read_line() -> str:
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not line.done():
            line.set_result(os.read(fd, 4096).decode(errors="replace"))   # a terminal hands over a whole line

    loop.add_reader(fd, readable)
    try:
        return await line
    finally:
        loop.remove_reader(fd)
