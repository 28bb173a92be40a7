"""An arm's URDF file as the envs read it before PyBullet loads it: where it is, that it is a URDF, its joint
types, the mesh files it names (all of them must exist), and a hash of its content and of those meshes.

A path is found as PyBullet finds it: as given (absolute, or relative to the current folder), else inside
``pybullet_data`` (``kuka_iiwa/model.urdf``). A mesh ``filename`` is looked for beside the URDF, then in the
current folder and in ``pybullet_data``; ``package://PKG/rest`` also as ``rest`` and as ``PKG/rest`` from the
URDF's folder and its parents (what a ROS package layout needs without ROS).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pybullet_data


class UrdfError(ValueError):
    """A URDF (or an option about it) the envs cannot use; the message is one line that names the file."""


@dataclass(frozen=True)
class UrdfFile:
    """A URDF checked to be readable: ``given`` as the user wrote it, ``path`` where it was found, the robot's
    ``name``, each joint's URDF ``type`` by name, the mesh files it names (found, in order of first use),
    ``sha256``: of the URDF's bytes and each mesh's bytes, so that an edited mesh changes the hash too, and
    ``mimics``: each joint with a ``<mimic>`` element, by name, as (the joint it follows, multiplier, offset):
    PyBullet ignores ``<mimic>``, so the arm drives each follower itself."""

    given: str
    path: Path
    name: str
    joint_types: dict[str, str]
    meshes: tuple[Path, ...]
    sha256: str
    mimics: dict[str, tuple[str, float, float]] = field(default_factory=dict)


def find_urdf(given: str) -> Path:
    """The file ``given`` names (as given, else in ``pybullet_data``); ``UrdfError`` when there is none."""
    path = Path(given).expanduser()
    if path.is_file():
        return path.resolve()
    data = Path(pybullet_data.getDataPath())
    if not path.is_absolute() and (data / path).is_file():
        return data / path
    raise UrdfError(f"--urdf {given}: no such file (looked in the current folder and in pybullet_data, {data})")


def _mesh_candidates(filename: str, urdf_dir: Path) -> list[Path]:
    """Where a mesh ``filename`` of a URDF in ``urdf_dir`` may be, in the order they are tried."""
    name = filename.removeprefix("file://")
    if Path(name).is_absolute():
        return [Path(name)]
    roots = [urdf_dir, Path.cwd(), Path(pybullet_data.getDataPath())]
    names = [name]
    if name.startswith("package://"):
        rest = name.removeprefix("package://")
        package, _, inside = rest.partition("/")
        names = [rest, inside] if inside else [rest]
        roots += [parent for parent in urdf_dir.parents]
    return [root / n for n in names for root in roots]


def read_urdf(given: str) -> UrdfFile:
    """Find, parse and hash the URDF ``given``. ``UrdfError`` for a missing file, a file that is not a URDF
    (not XML, or its root is not ``<robot>``) or a mesh that cannot be found."""
    path = find_urdf(given)
    data = path.read_bytes()
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise UrdfError(f"--urdf {given}: not a URDF (not XML: {e})") from None
    if root.tag != "robot":
        raise UrdfError(f"--urdf {given}: not a URDF (its root element is <{root.tag}>, not <robot>)")
    joints = root.findall("joint")  # the robot's joints (a <transmission> names joints too, without a type)
    joint_types = {j.get("name", ""): j.get("type", "") for j in joints}
    mimics = {}
    for j in joints:
        mimic = j.find("mimic")
        if mimic is not None:
            try:
                mimics[j.get("name", "")] = (mimic.get("joint", ""), float(mimic.get("multiplier", 1.0)),
                                             float(mimic.get("offset", 0.0)))
            except ValueError:
                raise UrdfError(f"--urdf {given}: joint {j.get('name')!r} has a <mimic> whose multiplier or offset "
                                "is not a number") from None
    meshes: list[Path] = []
    for mesh in root.iter("mesh"):
        filename = mesh.get("filename", "")
        found = next((p for p in _mesh_candidates(filename, path.parent) if p.is_file()), None)
        if found is None:
            raise UrdfError(f"--urdf {given}: mesh {filename!r} not found (looked beside the URDF, in the current "
                            "folder and in pybullet_data)")
        if found not in meshes:
            meshes.append(found)
    digest = hashlib.sha256(data)
    for mesh_path in meshes:
        digest.update(b"\0" + mesh_path.name.encode() + b"\0")
        digest.update(mesh_path.read_bytes())
    return UrdfFile(given, path, root.get("name", path.stem), joint_types, tuple(meshes), digest.hexdigest(), mimics)
