import sys
from pathlib import Path

# Reuse tests/deploy's helpers (rendering, the overlay checks).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
