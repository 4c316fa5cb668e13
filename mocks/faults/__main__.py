"""`python -m mocks.faults`: rewrite `_names.py` from the catalogue after editing a `*.toml`."""

from __future__ import annotations

import sys
from pathlib import Path

from mocks.faults import render_fault_names

if __name__ == "__main__":
    target = Path(__file__).with_name("_names.py")
    target.write_text(render_fault_names(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
