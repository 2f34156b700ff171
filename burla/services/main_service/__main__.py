"""main_service's command: `python -m burla.services.main_service`.

A command line that only sets `local`'s flags runs this machine's cluster at once, its
first node's process started before anything else loads (local_start); any other goes to
the command line's parser (command)."""

import sys
from collections.abc import Sequence

from burla.services.main_service.local_start import read_local_flags, serve_local


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line `argv` (this process's, by default)."""
    args = list(sys.argv[1:] if argv is None else argv)
    flags = read_local_flags(args)
    if flags is not None:
        serve_local(flags)
        return
    from burla.services.main_service.command import main as command

    command(args=args, prog_name="python -m burla.services.main_service")


if __name__ == "__main__":
    main()
