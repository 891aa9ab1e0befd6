"""A network's switch, started by lago itself (``python -m lago._switch --config F --pidfile F``)."""

import sys

from ._lago import run_switch

if __name__ == "__main__":
    sys.exit(run_switch(sys.argv[1:]))
