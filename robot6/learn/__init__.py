"""The algorithm: networks, the SAC update, optimizers, the replay ring and hindsight relabelling. It knows no
file and no env: what it learns from comes in as arrays, what it keeps goes out as state dicts."""
