import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from netns.fixtures import lab, swept_labs

__all__ = ["lab", "swept_labs"]
