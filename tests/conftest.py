import sys
from pathlib import Path

# Shared Hypothesis strategies live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
