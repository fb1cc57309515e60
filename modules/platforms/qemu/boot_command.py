"""Packer's boot_command: text typed into a VM's console, with key names in angle brackets, read into the key
events QEMU's monitor sends (input-send-event).

  "<esc><wait>auto url=http://{{ http_ip }}:{{ http_port }}/preseed.cfg<enter>"

Key names are Packer's, in any case: <enter> <return> <esc> <tab> <bs> <del> <spacebar> <insert> <home> <end>
<pageUp> <pageDown> <menu> <up> <down> <left> <right> <f1>..<f12>, the modifiers <leftAlt> <leftCtrl>
<leftShift> <leftSuper> <rightAlt> <rightCtrl> <rightShift> <rightSuper>, each of those also with On or Off
(held down, let go); <wait> (1 s), <wait5>, <wait10> and <waitXX> with a duration (<wait500ms>, <wait1m30s>).
Any other character is typed as on a US keyboard (shift for capitals and the symbols above the digits).
A `<` that starts no key name is typed as it is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SPECIAL = {"enter": "ret", "return": "ret", "esc": "esc", "tab": "tab", "bs": "backspace", "del": "delete",
           "spacebar": "spc", "insert": "insert", "home": "home", "end": "end", "pageup": "pgup",
           "pagedown": "pgdn", "menu": "menu", "up": "up", "down": "down", "left": "left", "right": "right",
           **{f"f{n}": f"f{n}" for n in range(1, 13)}}
MODIFIERS = {"leftalt": "alt", "leftctrl": "ctrl", "leftshift": "shift", "leftsuper": "meta_l",
             "rightalt": "alt_r", "rightctrl": "ctrl_r", "rightshift": "shift_r", "rightsuper": "meta_r"}
PLAIN = {" ": "spc", "\n": "ret", "\t": "tab", "-": "minus", "=": "equal", "[": "bracket_left",
         "]": "bracket_right", "\\": "backslash", ";": "semicolon", "'": "apostrophe", "`": "grave_accent",
         ",": "comma", ".": "dot", "/": "slash"}
SHIFTED = {"!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9", ")": "0",
           "_": "minus", "+": "equal", "{": "bracket_left", "}": "bracket_right", "|": "backslash",
           ":": "semicolon", '"': "apostrophe", "~": "grave_accent", "<": "comma", ">": "dot", "?": "slash"}
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
TOKEN = re.compile(r"<([A-Za-z0-9.]+)>")
WAIT = re.compile(r"wait(\d*)$|wait((?:\d+(?:\.\d+)?(?:ms|s|m|h))+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Key:
    """A key pressed and let go, with the modifiers held for it (shift for a capital)."""

    qcode: str
    shift: bool = False


@dataclass(frozen=True)
class Hold:
    """A modifier pressed (down) or let go (not down): <leftCtrlOn>, <leftCtrlOff>."""

    qcode: str
    down: bool


@dataclass(frozen=True)
class Wait:
    seconds: float


Action = Key | Hold | Wait


class BootCommandError(ValueError):
    pass


def parse(text: str) -> list[Action]:
    """The actions of one boot_command string, in order."""
    actions: list[Action] = []
    position = 0
    while position < len(text):
        found = TOKEN.match(text, position)
        named = _named(found.group(1)) if found else None
        if named is not None:
            actions.append(named)
            position = found.end()
            continue
        actions.append(_character(text[position]))
        position += 1
    return actions


def _named(name: str) -> Action | None:
    lower = name.lower()
    if lower in SPECIAL:
        return Key(SPECIAL[lower])
    for suffix, down in (("on", True), ("off", False)):
        if lower.endswith(suffix) and lower[:-len(suffix)] in MODIFIERS:
            return Hold(MODIFIERS[lower[:-len(suffix)]], down)
    if lower in MODIFIERS:
        return Key(MODIFIERS[lower])
    wait = WAIT.match(name)
    if wait:
        if wait.group(2):
            return Wait(go_duration(wait.group(2)))
        return Wait(float(wait.group(1)) if wait.group(1) else 1.0)
    return None


def go_duration(text: str) -> float:
    """Go's duration syntax, as Packer's <waitXX>, boot_wait and the like take it: 300ms, 1.5s, 1m30s
    (ValueError for anything else)."""
    if not re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+", text.strip(), re.IGNORECASE):
        raise ValueError(f"{text!r} is not a duration")
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text, re.IGNORECASE):
        total += float(number) * DURATION_UNITS[unit.lower()]
    return total


def _character(char: str) -> Key:
    if char.isascii() and char.isalpha():
        return Key(char.lower(), shift=char.isupper())
    if char.isascii() and char.isdigit():
        return Key(char)
    if char in PLAIN:
        return Key(PLAIN[char])
    if char in SHIFTED:
        return Key(SHIFTED[char], shift=True)
    raise BootCommandError(f"{char!r} cannot be typed on a US keyboard")


def key_events(key: Key) -> list[list[dict]]:
    """The input-send-event batches that type one key: press (with shift first), then release."""
    def event(qcode: str, down: bool) -> dict:
        return {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}
    if key.shift:
        return [[event("shift", True), event(key.qcode, True)], [event(key.qcode, False), event("shift", False)]]
    return [[event(key.qcode, True)], [event(key.qcode, False)]]


def hold_event(hold: Hold) -> list[dict]:
    return [{"type": "key", "data": {"down": hold.down, "key": {"type": "qcode", "data": hold.qcode}}}]
