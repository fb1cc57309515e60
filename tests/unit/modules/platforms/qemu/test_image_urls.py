"""Base image urls: cache names and how they are shown."""
from __future__ import annotations

import hashlib

from modules.platforms.qemu.image_urls import cache_name, display_url


def test_cache_name_is_a_hash_of_the_url_plus_a_readable_basename():
    url = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
    name = cache_name(url)
    assert name == hashlib.sha256(url.encode()).hexdigest()[:16] + "-debian-12-genericcloud-amd64.qcow2"
    assert cache_name(url + "?x=1") != name
    assert cache_name("https://h/a%20b/we%3Bird%20name.img").endswith("-we_ird_name.img")
    assert cache_name("https://h/..hidden").split("-", 1)[1] == "hidden"


def test_display_url_hides_credentials():
    assert display_url("https://user:pw@example.org:8443/x.img") == "https://example.org:8443/x.img"
