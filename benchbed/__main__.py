"""``python -m benchbed``: what ``accelerate launch -m benchbed run ...`` starts in every process."""

from benchbed.cli.app import main

main()
