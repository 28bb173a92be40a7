"""Export a checkpoint's deterministic policy for deployment: observation in, action in the env's bounds out.

    robot6-export checkpoints/RUN/best.pth --format torchscript --out policy.pt
    robot6-export checkpoints/RUN/best.pth --format onnx --out policy.onnx

The exported function is ``action = low + (tanh(mu(obs)) + 1) / 2 * (high - low)`` for a batch of
observations (B, obs_dim) -> (B, act_dim), float32, with the batch size free. TorchScript files load with
``torch.jit.load`` (Python) or libtorch (C++); ONNX files with onnxruntime or any ONNX runtime.

What an action means travels with the file: the env id, the sizes, the action bounds and, for an arm, its
joints in action order with their types, limits and ``action_scale`` (each action component moves its
joint's position target by up to that much per control step, at ``control_hz``), the end-effector link and the
URDF with its sha256; the ``interface`` (``robot6.envs.interface``: the named sensor fields in SI units the
observation is built from, and the command an action becomes, with its limits and the control rate), which
``robot6.deploy`` runs; and the env's keyword arguments (``env_kwargs``: its arm), for the deployment dry run.
In an ONNX file these are metadata properties (``robot6.*``, values as JSON); beside a TorchScript file they
are a JSON file of the same name with ``.json`` added (``policy.pt.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import torch

from robot6.errors import ConfigError, Robot6Error
from robot6.learn.networks import DeterministicPolicy
from robot6.run.report import command
from robot6.run.rollouts import load_policy

FORMATS = ("torchscript", "onnx")


def deployed_policy(checkpoint: Path) -> tuple[DeterministicPolicy, dict]:
    """The ``DeterministicPolicy`` of a checkpoint (eval mode) and the checkpoint's meta."""
    actor, meta = load_policy(checkpoint)
    return DeterministicPolicy(actor, meta["action_low"], meta["action_high"]).eval(), meta


def deployment_metadata(meta: dict) -> dict:
    """What a deployment needs to know of the policy's inputs and outputs (see the module's docstring); the env
    is made once (nominal) to read its interface."""
    from robot6.envs.factory import make_env
    from robot6.envs.interface import interface_of
    from robot6.run.config import Config

    info = {key: meta[key] for key in ("env_id", "obs_dim", "act_dim", "action_low", "action_high")}
    if isinstance(meta.get("arm"), dict):
        info["arm"] = meta["arm"]
    env_kwargs = Config.from_dict(meta.get("config", {})).env_kwargs()
    env = make_env(meta["env_id"], **env_kwargs)
    try:
        info["interface"] = interface_of(env).spec()
    finally:
        env.close()
    info["env_kwargs"] = env_kwargs
    return info


def export(checkpoint: Path, fmt: str, out: Path) -> None:
    """Write the deployed policy of ``checkpoint`` to ``out`` as ``fmt`` (``torchscript`` or ``onnx``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    policy, meta = deployed_policy(checkpoint)
    info = deployment_metadata(meta)
    example = torch.zeros(2, int(meta["obs_dim"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still loadable
                torch.jit.trace(policy, example).save(str(out))
            Path(f"{out}.json").write_text(json.dumps(info, indent=2) + "\n")
        else:
            try:
                import onnxscript  # noqa: F401  (the exporter needs it)
            except ImportError:
                raise ConfigError("--format onnx needs the packages onnx and onnxscript: pip install onnx onnxscript (both come with robot6)") from None
            # The exporter warns about torchvision ops and its own internals; none of it concerns this model.
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                program = torch.onnx.export(
                    policy, (example,), None, dynamo=True, input_names=["obs"], output_names=["action"],
                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
                )
            program.model.metadata_props.update({f"robot6.{k}": json.dumps(v) for k, v in info.items()})
            program.save(str(out), external_data=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=command("export"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a .pth checkpoint")
    p.add_argument("--format", choices=FORMATS, required=True, help="torchscript (.pt) or onnx (.onnx)")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    args = p.parse_args(argv)
    try:
        export(args.checkpoint, args.format, args.out)
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    beside = f", its metadata in {args.out}.json" if args.format == "torchscript" else ", its metadata inside"
    print(f"wrote {args.out} ({args.format}): obs (B, obs_dim) float32 -> action (B, act_dim) in the env's bounds{beside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
