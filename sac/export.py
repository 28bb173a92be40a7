"""Export a checkpoint's deterministic policy for deployment: observation in, action in the env's bounds out.

    python -m sac.export checkpoints/RUN/best.pth --format torchscript --out policy.pt
    python -m sac.export checkpoints/RUN/best.pth --format onnx --out policy.onnx

The exported function is ``action = low + (tanh(mu(obs)) + 1) / 2 * (high - low)`` for a batch of
observations (B, obs_dim) -> (B, act_dim), float32, with the batch size free. TorchScript files load with
``torch.jit.load`` (Python) or libtorch (C++); ONNX files with onnxruntime or any ONNX runtime.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch

from sac.errors import ConfigError, Robot6Error
from sac.evaluate import load_policy
from sac.networks import DeterministicPolicy

FORMATS = ("torchscript", "onnx")


def deployed_policy(checkpoint: Path) -> tuple[DeterministicPolicy, int]:
    """The ``DeterministicPolicy`` of a checkpoint (eval mode) and its observation size."""
    actor, meta = load_policy(checkpoint)
    return DeterministicPolicy(actor, meta["action_low"], meta["action_high"]).eval(), int(meta["obs_dim"])


def export(checkpoint: Path, fmt: str, out: Path) -> None:
    """Write the deployed policy of ``checkpoint`` to ``out`` as ``fmt`` (``torchscript`` or ``onnx``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    policy, obs_dim = deployed_policy(checkpoint)
    example = torch.zeros(2, obs_dim)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still loadable
                torch.jit.trace(policy, example).save(str(out))
        else:
            try:
                import onnxscript  # noqa: F401  (the exporter needs it)
            except ImportError:
                raise ConfigError("--format onnx needs the packages onnx and onnxscript: pip install -r requirements.txt") from None
            # The exporter warns about torchvision ops and its own internals; none of it concerns this model.
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.onnx.export(
                    policy, (example,), str(out), dynamo=True, input_names=["obs"], output_names=["action"],
                    dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False,
                )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sac.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a .pth checkpoint")
    p.add_argument("--format", choices=FORMATS, required=True, help="torchscript (.pt) or onnx (.onnx)")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    args = p.parse_args(argv)
    try:
        export(args.checkpoint, args.format, args.out)
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({args.format}): obs (B, obs_dim) float32 -> action (B, act_dim) in the env's bounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
