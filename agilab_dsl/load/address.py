"""Dask scheduler addresses, judged by their shape before anything connects.

An address is ``host``, ``host:port``, ``[v6]:port``, ``user@host…`` (AGILAB drops the user), each
optionally behind ``tcp://`` or ``tls://``; Dask's other transports (``ws://``, ``wss://``,
``ucx://``) are passed on as written. ``inproc://`` addresses live inside one Python process and so
can never name an external scheduler. :func:`scheduler_problem` says what is wrong, or None.
Nothing is resolved or connected here (that is :mod:`agilab_dsl.stages.backends.dask`).
"""

from __future__ import annotations

import ipaddress
import re

PASSED_ON = ("ws", "wss", "ucx")  # Dask transports whose addresses are kept as written
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")

EXAMPLE = "write host:port, e.g. 127.0.0.1:8786 or tcp://scheduler.lan:8786"


def scheduler_problem(address: str) -> str | None:
    """Why ``address`` cannot be a Dask scheduler address, or None when its shape is sound."""
    text = address.strip()
    if not text:
        return f"the scheduler address is empty; {EXAMPLE}"
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        return f"{text!r} is not a scheduler address (it holds spaces or control characters); {EXAMPLE}"
    protocol, sep, rest = text.rpartition("://")
    if sep:
        if protocol == "inproc":
            return (
                f"{text!r} is an in-process address, which only the Python process that made it can "
                f"reach; an external scheduler is tcp://host:port"
            )
        if protocol in PASSED_ON:
            return None if rest else f"{text!r} names no host; {EXAMPLE}"
        if protocol not in ("tcp", "tls"):
            return f"{text!r}: unknown protocol {protocol!r}:// (Dask speaks tcp://, tls://, ws://, wss://, ucx://)"
    rest = rest.rpartition("@")[2]
    if "/" in rest:
        return f"{text!r} is not a scheduler address (a path follows the host); {EXAMPLE}"
    return _host_port_problem(text, rest)


def _host_port_problem(text: str, rest: str) -> str | None:
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or not _is_v6(host):
            return f"{text!r}: {rest!r} is not an IPv6 address in brackets; write [::1]:8786"
        if tail and not tail.startswith(":"):
            return f"{text!r}: only :port may follow ']'; {EXAMPLE}"
        port = tail[1:] if tail else None
    elif rest.count(":") > 1:
        if not _is_v6(rest):
            return f"{text!r} is not a scheduler address; {EXAMPLE}"
        return None  # a bare IPv6 address: the port is added
    else:
        host, colon, port_text = rest.partition(":")
        if not host:
            return f"{text!r} names no host; {EXAMPLE}"
        if not _HOST.fullmatch(host):
            return f"{text!r}: {host!r} is not a host name or IP address; {EXAMPLE}"
        port = port_text if colon else None
    if port is None:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"{text!r}: the port {port!r} is not a number from 1 to 65535"
    return None


def _is_v6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
