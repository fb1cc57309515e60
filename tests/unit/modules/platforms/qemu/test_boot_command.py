"""Packer's boot_command syntax read into QEMU key events."""
from __future__ import annotations

import pytest

from modules.platforms.qemu.boot_command import (BootCommandError, Hold, Key, Wait, hold_event, key_events,
                                                 parse)


def test_text_and_key_names_as_packer_writes_them():
    assert parse("<esc><wait>auto url=http://10.0.2.2:8000/p.cfg<enter>") == [
        Key("esc"), Wait(1.0), *[Key(c) for c in "auto"], Key("spc"), *[Key(c) for c in "url"], Key("equal"),
        *[Key(c) for c in "http"], Key("semicolon", shift=True), Key("slash"), Key("slash"),
        Key("1"), Key("0"), Key("dot"), Key("0"), Key("dot"), Key("2"), Key("dot"), Key("2"),
        Key("semicolon", shift=True), *[Key(c) for c in "8000"], Key("slash"), Key("p"), Key("dot"),
        *[Key(c) for c in "cfg"], Key("ret")]


@pytest.mark.parametrize("text, expected", [
    ("<wait5>", Wait(5.0)), ("<wait10>", Wait(10.0)), ("<wait500ms>", Wait(0.5)), ("<wait1m30s>", Wait(90.0)),
    ("<Wait2s>", Wait(2.0)), ("<ENTER>", Key("ret")), ("<return>", Key("ret")), ("<f12>", Key("f12")),
    ("<pageUp>", Key("pgup")), ("<leftCtrlOn>", Hold("ctrl", True)), ("<rightAltOff>", Hold("alt_r", False)),
    ("<leftSuper>", Key("meta_l")), ("<bs>", Key("backspace")), ("<spacebar>", Key("spc"))])
def test_each_key_name(text, expected):
    assert parse(text) == [expected]


def test_capitals_and_symbols_are_shifted_and_a_stray_angle_bracket_is_typed():
    assert parse("A~<x>") == [Key("a", shift=True), Key("grave_accent", shift=True), Key("comma", shift=True),
                               Key("x"), Key("dot", shift=True)]


def test_a_character_no_us_keyboard_has_is_an_error():
    with pytest.raises(BootCommandError, match="'é' cannot be typed"):
        parse("café")


def test_events_press_then_release_with_shift_around_the_key():
    down, up = key_events(Key("a", shift=True))
    assert [(e["data"]["key"]["data"], e["data"]["down"]) for e in down] == [("shift", True), ("a", True)]
    assert [(e["data"]["key"]["data"], e["data"]["down"]) for e in up] == [("a", False), ("shift", False)]
    assert hold_event(Hold("ctrl", True)) == [{"type": "key", "data": {"down": True,
                                                                         "key": {"type": "qcode", "data": "ctrl"}}}]
