"""Reading resource properties the same way offline and under CrossGuard.

Rules see properties as plain dicts and lists under their wire (camelCase)
names. Three states matter and must not be confused:

- a key that is absent: AWS (or the provider) applies its default, and rules
  judge that default (an absent ``storageEncrypted`` means unencrypted);
- a value that is not known yet (``pulumi preview`` of a value computed from
  another resource): rules cannot tell and report nothing (FIELD-NOTES 24);
- a known value: rules judge it.

Under CrossGuard, ``args.props`` is a read-only proxy that raises
``UnknownValueError`` when an unknown value is read, and the raw values are
sentinel strings. ``to_plain`` turns such a proxy into plain data in which every
unknown is the ``UNKNOWN`` marker, so rules never see the proxy or crash on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The sentinels the Pulumi engine uses for values unknown during preview
# (pulumi_policy.proxy, mirrored from sdk/go/common/resource/plugin/rpc.go);
# a unit test checks they match the installed pulumi_policy.
PULUMI_UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})


# How the wire format marks a secret value: {SIG_KEY: SECRET_SIG, "value": ...}
# (pulumi sdk/go/common/resource/properties.go). The policy SDK unwraps these
# before rules run; the offline harness records inputs as they arrive.
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def is_secret_wrapper(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


class _Unknown:
    """A value that will only be known after the resource is created."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"

    def __bool__(self) -> bool:
        # Truth-testing an unknown is a bug in a rule: make it loud.
        raise TypeError("an unknown property value has no truth value; check is_unknown() first")


UNKNOWN: Any = _Unknown()
_ABSENT = object()


def is_unknown(value: Any) -> bool:
    """True for values a rule cannot judge: unknown markers, engine sentinels, ``None``."""
    if value is None or value is UNKNOWN:
        return True
    return isinstance(value, str) and value in PULUMI_UNKNOWN_SENTINELS


def get(props: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``props[key]``; ``default`` (the AWS default) if absent; ``UNKNOWN`` if unknown."""
    value = props.get(key, _ABSENT) if isinstance(props, Mapping) else _ABSENT
    if value is _ABSENT:
        return default
    return UNKNOWN if is_unknown(value) else value


def contains_unknown(value: Any) -> bool:
    """True if ``value`` or anything nested in it is unknown."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknown(v) for v in value)
    return False


def to_plain(value: Any) -> Any:
    """Plain dicts/lists from CrossGuard's unknown-checking proxies (or from plain data),
    with secret markers unwrapped: rules judge a secret's value like any other.

    Reading an unknown through the proxy raises ``pulumi_policy``'s
    ``UnknownValueError``; any exception raised by a single read is taken as
    "unknown" for that value, so this module needs no import of pulumi_policy.
    """
    if isinstance(value, (str, bytes)):
        return UNKNOWN if is_unknown(value) else value
    if is_secret_wrapper(value):
        return to_plain(value.get("value"))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in list(iter(value)):
            try:
                item = value[key]
            except Exception:  # UnknownValueError from the policy SDK's proxy
                out[key] = UNKNOWN
                continue
            out[key] = to_plain(item)
        return out
    if isinstance(value, Sequence):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                item = value[index]
            except Exception:  # UnknownValueError from the policy SDK's proxy
                items.append(UNKNOWN)
                continue
            items.append(to_plain(item))
        return items
    return UNKNOWN if is_unknown(value) else value


def strings(value: Any) -> list[str]:
    """Every known string nested anywhere in ``value`` (keys excluded)."""
    found: list[str] = []
    if is_unknown(value):
        return found
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(strings(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.extend(strings(item))
    return found


def as_list(value: Any) -> list[Any]:
    """A JSON-policy style field (a single value or a list) as a list."""
    if value is None or value is UNKNOWN:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
