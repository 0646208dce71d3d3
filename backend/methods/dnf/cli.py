"""``python -m backend.methods.dnf.cli <command> ...``: the ``anim4d dnf`` commands stand-alone."""

import sys

from backend.cli.dnf_cmds import main

if __name__ == "__main__":
    sys.exit(main())
