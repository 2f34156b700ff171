"""main_service's command: `python -m burla.services.main_service`.

A command line that only sets `local`'s flags runs this machine's cluster at once, its
first node's process started before anything else loads (local_start); any other goes to
the command line's parser (command)."""

import sys

from burla.services.main_service.local_start import read_local_flags, serve_local


def main() -> None:
    flags = read_local_flags(sys.argv[1:])
    if flags is not None:
        serve_local(flags)
        return
    from burla.services.main_service.command import main as command

    command(prog_name="python -m burla.services.main_service")


if __name__ == "__main__":
    main()
