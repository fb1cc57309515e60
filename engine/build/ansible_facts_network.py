"""Ansible's network facts from the probe, after ansible/module_utils/facts/network/linux.py:
interfaces, one fact per interface, default_ipv4/ipv6, all_ipv4/ipv6_addresses, locally_reachable_ips.

Ansible asks `ip` once per interface; the probe asks once for all (`ip addr show primary`, then
`secondary`) and this module splits the answer by interface. Without `ip` Ansible gathers no network
facts; recipe still gives the interfaces from /sys and default_ipv4's interface and gateway from
/proc/net/route, so a minimal guest keeps the facts it can have.
"""
from __future__ import annotations

import ipaddress
import os.path
import re
from typing import Any

from engine.build.ansible_facts_system import Probe

INTERFACE_TYPE = {"1": "ether", "32": "infiniband", "512": "ppp", "772": "loopback", "65534": "tunnel"}
ROUTE4_TARGET = "8.8.8.8"
ROUTE6_TARGET = "2404:6800:400a:800::1012"
LINK_HEADER = re.compile(r"^\d+:\s+([^:@\s]+)")


def network_facts(probe: Probe) -> dict[str, Any]:
    names = [n for n in probe.lines("netdirs") if n not in (".", "..")]
    table, links = _net_files(probe), _net_links(probe)
    interfaces = {name: _sysfs_interface(name, table, links.get(name, {})) for name in names}
    has_ip = "ip" in probe.bins
    default4 = _default_route(probe.lines("route4"), ROUTE4_TARGET) if has_ip else _proc_route(probe)
    default6 = _default_route(probe.lines("route6"), ROUTE6_TARGET) if has_ip else {}
    ips: dict[str, list[str]] = {"all_ipv4_addresses": [], "all_ipv6_addresses": []}
    state = _AddrState(interfaces, default4, default6, ips, table)
    for device, lines in _by_device(probe.lines("addr_primary")):
        if device in interfaces:
            state.parse(device, lines, secondary=False)
    for device, lines in _by_device(probe.lines("addr_secondary")):
        if device in interfaces:
            state.parse(device, lines, secondary=True)
    renamed = {name.replace(":", "_"): value for name, value in interfaces.items()}
    facts: dict[str, Any] = {"interfaces": list(renamed), **renamed}
    if not has_ip:
        return {**facts, **({"default_ipv4": default4} if default4 else {})}
    return {**facts, "default_ipv4": default4, "default_ipv6": default6, **ips,
            "locally_reachable_ips": _locally_reachable(probe)}


def _net_files(probe: Probe) -> dict[tuple[str, str], str]:
    """{(interface, file under it): content} from `grep -H '' /sys/class/net/*/...`."""
    files = {}
    for line in probe.lines("netfiles"):
        path, sep, content = line.partition(":")
        parts = path.split("/")
        if sep and len(parts) >= 6 and path.startswith("/sys/class/net/"):
            files[(parts[4], "/".join(parts[5:]))] = content.strip()
    return files


def _sysfs_interface(name: str, table: dict[tuple[str, str], str], links: dict[str, list[str]]) -> dict[str, Any]:
    def get(key: str) -> str | None:
        return table.get((name, key))

    iface: dict[str, Any] = {"device": name}
    mac = get("address")
    if mac and mac != "00:00:00:00:00:00":
        iface["macaddress"] = mac
    if get("mtu"):
        iface["mtu"] = int(get("mtu"))
    if get("operstate") is not None:
        iface["active"] = get("operstate") != "down"
    if "module" in links:
        iface["module"] = os.path.basename(links["module"][0])
    if get("type") is not None:
        iface["type"] = INTERFACE_TYPE.get(get("type") or "", "unknown")
    if "bridge" in links:
        iface.update(type="bridge", interfaces=links["bridge"])
        if get("bridge/bridge_id") is not None:
            iface["id"] = get("bridge/bridge_id")
        if get("bridge/stp_state") is not None:
            iface["stp"] = get("bridge/stp_state") == "1"
    if "bonding" in links:
        iface.update(type="bonding", slaves=(get("bonding/slaves") or "").split(),
                     mode=_first_word(get("bonding/mode")), miimon=_first_word(get("bonding/miimon")),
                     lacp_rate=_first_word(get("bonding/lacp_rate")))
        if get("bonding/primary"):
            iface["primary"] = get("bonding/primary")
            if get("bonding/all_slaves_active") is not None:
                iface["all_slaves_active"] = get("bonding/all_slaves_active") == "1"
    if "bonding_slave" in links:
        iface["perm_macaddress"] = get("bonding_slave/perm_hwaddr") or ""
    if "pciid" in links:
        iface["pciid"] = os.path.basename(links["pciid"][0])
    if get("speed"):
        iface["speed"] = int(get("speed"))
    if get("flags"):
        iface["promisc"] = bool(int(get("flags"), 16) & 0x0100)
    return iface


def _net_links(probe: Probe) -> dict[str, dict[str, list[str]]]:
    """{interface: {pciid|module|bridge|bonding|bonding_slave: [words]}} from the probe's netlinks lines."""
    links: dict[str, dict[str, list[str]]] = {}
    for line in probe.lines("netlinks"):
        words = line.split()
        if len(words) >= 2:
            links.setdefault(words[1], {})[words[0]] = words[2:]
    return links


def _first_word(text: str | None) -> str:
    words = (text or "").split()
    return words[0] if words else ""


def _default_route(lines: list[str], target: str) -> dict[str, Any]:
    """dev, src and via of `ip route get TARGET`, as Ansible's get_default_interfaces reads them."""
    words = lines[0].split() if lines else []
    found: dict[str, Any] = {}
    if not words or words[0] != target:
        return found
    for word, following in zip(words, words[1:]):
        if word == "dev":
            found["interface"] = following
        elif word == "src":
            found["address"] = following
        elif word == "via" and following != target:
            found["gateway"] = following
    return found


def _proc_route(probe: Probe) -> dict[str, Any]:
    """Without `ip`: the default route's interface and gateway from /proc/net/route (hex, little-endian)."""
    for line in probe.lines("proc_route")[1:]:
        words = line.split()
        if len(words) >= 3 and words[1] == "00000000":
            gateway = ipaddress.IPv4Address(int(words[2], 16).to_bytes(4, "little"))
            return {"interface": words[0], **({"gateway": str(gateway)} if int(gateway) else {})}
    return {}


def _by_device(lines: list[str]) -> list[tuple[str, list[str]]]:
    """`ip addr show` output cut into (device, its lines)."""
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        header = LINK_HEADER.match(line)
        if header:
            blocks.append((header.group(1), []))
        elif blocks:
            blocks[-1][1].append(line)
    return blocks


class _AddrState:
    """Ansible's parse_ip_output, with the interfaces, defaults and address lists it updates."""

    def __init__(self, interfaces: dict[str, Any], default4: dict[str, Any], default6: dict[str, Any],
                 ips: dict[str, list[str]], files: dict[tuple[str, str], str]):
        self.interfaces, self.default4, self.default6, self.ips = interfaces, default4, default6, ips
        self.files = files

    def mac(self, device: str) -> str:
        """The device's address file as read, 00:00:00:00:00:00 included (Ansible's default_* macaddress)."""
        return self.files.get((device, "address")) or "unknown"

    def parse(self, device: str, lines: list[str], secondary: bool) -> None:
        for line in lines:
            words = line.split()
            if words and words[0] == "inet":
                self._inet(device, words, secondary)
            elif words and words[0] == "inet6":
                self._inet6(device, words)

    def _inet(self, device: str, words: list[str], secondary: bool) -> None:
        address, _, prefix = words[1].partition("/")
        prefix = prefix or "32"      # point-to-point addresses have no prefix
        broadcast = words[3] if "/" in words[1] and len(words) > 3 and words[2] == "brd" else ""
        net = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
        entry = {"address": address, "broadcast": broadcast, "netmask": str(net.netmask),
                 "network": str(net.network_address), "prefix": prefix}
        label = words[-1]
        if label != device:
            self.interfaces[label] = {}
        target = self.interfaces[label]
        if not secondary and "ipv4" not in target:
            target["ipv4"] = dict(entry)
        else:
            target.setdefault("ipv4_secondaries", []).append(dict(entry))
        if secondary:
            main = self.interfaces[device]
            main.setdefault("ipv4_secondaries", [])
            if label != device:
                main["ipv4_secondaries"].append(dict(entry))
        if self.default4.get("address") == address:
            main = self.interfaces[device]
            self.default4.update(broadcast=broadcast, netmask=entry["netmask"], network=entry["network"],
                                 prefix=prefix, macaddress=self.mac(device), mtu=main.get("mtu"),
                                 type=main.get("type", "unknown"), alias=label)
        if not address.startswith("127."):
            self.ips["all_ipv4_addresses"].append(address)

    def _inet6(self, device: str, words: list[str]) -> None:
        if words[2] == "peer":
            address, prefix, scope = words[1], words[3].split("/")[1], words[5]
        else:
            (address, prefix), scope = words[1].split("/"), words[3]
        main = self.interfaces[device]
        main.setdefault("ipv6", []).append({"address": address, "prefix": prefix, "scope": scope})
        if self.default6.get("address") == address:
            self.default6.update(prefix=prefix, scope=scope, macaddress=self.mac(device),
                                 mtu=main.get("mtu"), type=main.get("type", "unknown"))
        if address != "::1":
            self.ips["all_ipv6_addresses"].append(address)


def _locally_reachable(probe: Probe) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for line in probe.lines("local4") + probe.lines("local6"):
        words = line.split()
        if len(words) >= 2 and words[0] == "local":
            family = "ipv6" if ":" in words[1] else "ipv4"
            if words[1] not in found[family]:
                found[family].append(words[1])
    return found
