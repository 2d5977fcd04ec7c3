import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "plugins", "filter"))
# Tools of the same virtualenv as this pytest, whatever PATH says.
BIN = os.path.dirname(sys.executable)
