"""benchbed: one harness for recommenders that feed collaborative-filtering embeddings into LLMs."""

import os as _os

# On a shared or oversubscribed CPU, OpenMP threads that spin while waiting steal the cores doing the work:
# measured 4x slower LLM scoring on a busy 2-core machine. Sleeping waiters cost little when the machine is
# idle. Set before torch loads its OpenMP runtime; an explicit OMP_WAIT_POLICY wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
