"""Tasks on the xArm6 (``robot6.envs.arm``): what the arm must do, how it is rewarded, when it succeeds."""
