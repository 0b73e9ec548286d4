"""transformers >= 5 draws a "Loading weights" tqdm bar for every ``from_pretrained``, even for a 90 MB
encoder loaded from disk; in a benchmark's log it is noise between the lines that matter (and it garbles
captured stderr). Turned off once, unless ``-vv`` asks for library detail."""

from __future__ import annotations


def quiet_weight_loading(verbosity: int = 0) -> None:
    """Disable transformers' progress bars (weights, downloads) in this process; ``-vv`` keeps them."""
    if verbosity > 1:
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.disable_progress_bar()
