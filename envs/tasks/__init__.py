"""Tasks on the xArm6 (``envs.robot``): what the arm must do, how it is rewarded, when it succeeds."""
