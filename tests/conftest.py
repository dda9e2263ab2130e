import sys
from pathlib import Path

# Make `tests.support` importable as `support` from every test folder.
sys.path.insert(0, str(Path(__file__).parent))
