"""A training run: its config and presets, the loop, resume, the checkpoint files and the replay segments, the
logs, evaluation, and the process around it (device, signals, the run folder's lock)."""
