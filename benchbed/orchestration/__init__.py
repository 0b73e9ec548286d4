"""Orchestration: what runs everything else (runner, tune, suite; the coming sweep).

Nothing below imports it."""
