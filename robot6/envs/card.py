"""An arm's card: the few facts about a gripper arm that its URDF cannot tell, in a small TOML file.

A URDF gives the chain, the joints and their limits, and the finger joints (the movable joints past the arm
chain) with their ``<mimic>`` ties. It does not say which point is the tool centre point (TCP), along which
axis of it the gripper approaches an object, or, when it is ambiguous, which joints are fingers. A card does::

    # panda.card.toml
    tcp_link = "panda_grasptarget"   # the link whose frame the TCP is measured from
    tcp_depth = 0.004                # m from that frame along the approach axis to the TCP
    approach = "z"                   # the axis of tcp_link that points from the gripper to what it grasps
    fingers = ["panda_finger_joint1", "panda_finger_joint2"]   # optional: default, the joints past the chain
    finger_links = ["panda_leftfinger", "panda_rightfinger"]   # optional: the two links whose gap is the width
    open = "upper"                   # optional: the finger joints' limit that opens (default: measured)
    home = [0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785]             # optional: arm joints to start IK from (rad, m)
    grip_force = 40.0                # optional: N (N*m) per finger joint (default: the URDF's effort)
    width_offset = 0.059             # optional: the width is the finger links' frames' distance less this (m),
                                     # instead of the gap between their collision shapes
    limits = { joint1 = [-3.1416, 3.1416] }  # optional: tighter arm joint limits than the URDF's (rad or m)

The card is found, in this order: named by ``--card PATH``; beside the URDF as ``<urdf stem>.card.toml``;
built in, for the URDFs of ``pybullet_data`` that ship one (``BUILT_IN``).
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pybullet_data

from robot6.envs.urdf import UrdfError, UrdfFile

CARDS = Path(__file__).parent / "cards"
# URDFs inside pybullet_data that have a card in this package.
BUILT_IN = {"franka_panda/panda.urdf": "panda.card.toml", "xarm/xarm6_with_gripper.urdf": "xarm6_with_gripper.card.toml"}
AXES = ("x", "y", "z", "-x", "-y", "-z")
LIMITS = ("lower", "upper")


@dataclass(frozen=True)
class ArmCard:
    """A card as read: where it came from (``path``), its fields (see the module's docstring) and the
    ``sha256`` of its bytes (checkpoints record it)."""

    path: Path
    sha256: str
    tcp_link: str
    tcp_depth: float = 0.0
    approach: str = "z"
    fingers: tuple[str, ...] | None = None
    finger_links: tuple[str, str] | None = None
    open: str | None = None
    home: tuple[float, ...] | None = None
    grip_force: float | None = None
    width_offset: float | None = None
    limits: tuple[tuple[str, float, float], ...] | None = None


def find_card(urdf: UrdfFile, given: str | None) -> Path | None:
    """The card for ``urdf``: ``given`` (which must exist), else ``<stem>.card.toml`` beside the URDF, else the
    built-in one for a ``pybullet_data`` URDF, else None."""
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UrdfError(f"--card {given}: no such file")
        return path.resolve()
    beside = urdf.path.with_name(urdf.path.stem + ".card.toml")
    if beside.is_file():
        return beside
    try:
        inside = urdf.path.resolve().relative_to(Path(pybullet_data.getDataPath()).resolve()).as_posix()
    except ValueError:
        return None
    return CARDS / BUILT_IN[inside] if inside in BUILT_IN else None


def _number(where: str, name: str, value, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UrdfError(f"{where}: {name} must be a number ({unit}), got {value!r}")
    return float(value)


def _names(where: str, name: str, value, count: int | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UrdfError(f"{where}: {name} must be a list of names, got {value!r}")
    if count is not None and len(value) != count:
        raise UrdfError(f"{where}: {name} must name {count} links, got {len(value)}")
    return tuple(value)


def read_card(path: Path) -> ArmCard:
    """Parse and check a card; ``UrdfError`` (one line naming the file and the field) for a file that is not
    TOML, a missing ``tcp_link``, an unknown field or a field of the wrong type or value."""
    where = f"card {path}"
    data = path.read_bytes()
    try:
        fields = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UrdfError(f"{where}: not TOML ({e})") from None
    known = set(ArmCard.__dataclass_fields__) - {"path", "sha256"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UrdfError(f"{where}: unknown field(s) {', '.join(unknown)} (a card has {', '.join(sorted(known))})")
    if not isinstance(fields.get("tcp_link"), str):
        raise UrdfError(f"{where}: tcp_link must name the link the tool centre point is measured from"
                        f" (got {fields.get('tcp_link')!r})")
    card = {"tcp_link": fields["tcp_link"]}
    if "tcp_depth" in fields:
        card["tcp_depth"] = _number(where, "tcp_depth", fields["tcp_depth"], "m")
    if "approach" in fields:
        if fields["approach"] not in AXES:
            raise UrdfError(f"{where}: approach must be one of {', '.join(AXES)}, got {fields['approach']!r}")
        card["approach"] = fields["approach"]
    if "fingers" in fields:
        card["fingers"] = _names(where, "fingers", fields["fingers"])
    if "finger_links" in fields:
        card["finger_links"] = _names(where, "finger_links", fields["finger_links"], 2)
    if "open" in fields:
        if fields["open"] not in LIMITS:
            raise UrdfError(f"{where}: open must be \"lower\" or \"upper\" (the finger joints' limit that opens), "
                            f"got {fields['open']!r}")
        card["open"] = fields["open"]
    if "home" in fields:
        home = fields["home"]
        if not isinstance(home, list) or not home:
            raise UrdfError(f"{where}: home must be a list of joint positions (rad or m), got {home!r}")
        card["home"] = tuple(_number(where, "home", v, "rad or m") for v in home)
    if "grip_force" in fields:
        card["grip_force"] = _number(where, "grip_force", fields["grip_force"], "N or N*m")
        if card["grip_force"] <= 0:
            raise UrdfError(f"{where}: grip_force must be positive, got {card['grip_force']}")
    if "limits" in fields:
        table = fields["limits"]
        if not isinstance(table, dict):
            raise UrdfError(f"{where}: limits must be a table of joint = [lower, upper], got {table!r}")
        limits = []
        for joint, pair in table.items():
            if not isinstance(pair, list) or len(pair) != 2:
                raise UrdfError(f"{where}: limits.{joint} must be [lower, upper], got {pair!r}")
            lo, hi = (_number(where, f"limits.{joint}", v, "rad or m") for v in pair)
            if not lo < hi:
                raise UrdfError(f"{where}: limits.{joint} needs lower < upper, got [{lo}, {hi}]")
            limits.append((joint, lo, hi))
        card["limits"] = tuple(limits)
    if "width_offset" in fields:
        card["width_offset"] = _number(where, "width_offset", fields["width_offset"], "m")
    return ArmCard(path=path, sha256=hashlib.sha256(data).hexdigest(), **card)
