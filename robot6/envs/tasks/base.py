"""What every task on the arm shares: one PyBullet client per instance, a goal, a headless camera, closing."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robot6.envs.arm import camera_image


class ArmTaskEnv(gym.Env):
    """Base of the arm's task envs. A subclass sets ``self._sim`` (``robot6.envs.arm.connect``) and ``self._goal``,
    calls ``_set_render_mode`` first in its ``__init__``, and names where its camera looks (``CAMERA``, the
    keywords of ``robot6.envs.arm.camera_image``)."""

    metadata = {"render_modes": ["human", "rgb_array"]}
    CAMERA: dict[str, Any]  # camera_image keywords: target, and distance, yaw, pitch where not its defaults

    def _set_render_mode(self, render_mode: str | None, width: int, height: int) -> None:
        """Check and keep the render mode (None, "human" or "rgb_array") and the frame size."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.width, self.height = width, height

    def render(self):
        """An RGB frame (height, width, 3) with ``render_mode="rgb_array"`` (headless), else None."""
        if self.render_mode != "rgb_array":
            return None
        return camera_image(self._sim, self.width, self.height, **self.CAMERA)

    def close(self):
        if getattr(self, "_sim", None) is not None:
            self._sim.disconnect()
            self._sim = None

    @property
    def goal(self) -> np.ndarray:
        """The current goal position (3,), world frame, metres."""
        return self._goal.copy()
