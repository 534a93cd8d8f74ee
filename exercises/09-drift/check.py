"""Self-check of drift-triggered retraining: waits for the lab's drift check."""

import re

from labctl.book.runner import criterion

# The round trip skips this exercise until the lab has what it needs.
WAITS_FOR = "the lab's drift check (make traffic, make drift)"


def criteria(lab):
    yield criterion(
        "the lab has a drift check (make drift)",
        lambda: re.search(r"^drift:", (lab.root / "Makefile").read_text(), re.MULTILINE),
        f"this exercise waits for {WAITS_FOR}, which the lab does not have yet",
    )
