"""`burla image build`: the Docker backend's worker image, built on this machine."""

from __future__ import annotations

import click

from burla.cli.output import emit, json_option


@click.group()
def image() -> None:
    """Container images of the Docker backend."""


@image.command("build")
@click.option(
    "--mirror",
    default=None,
    metavar="URL",
    help="Debian mirror debootstrap installs from (default: http://deb.debian.org/debian).",
)
@click.option(
    "--python",
    "python",
    default="3.11",
    show_default=True,
    help="The Python version of the image's workers: 3.11 (Debian bookworm) or 3.13 (trixie).",
)
@json_option
def image_build(mirror: str | None, python: str, as_json: bool) -> None:
    """Build a default worker image on this machine (about a minute, once; needs root).

    Debian with python3, made with debootstrap and imported into the local Docker engine:
    no registry is used. Prints progress and the image's tag.

    \b
    Example:
      burla image build
      burla image build --python 3.13
    """
    from burla.backends.docker.image import DEFAULT_MIRROR, build_default_image

    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    tag = build_default_image(python=python, mirror=mirror or DEFAULT_MIRROR, echo=echo)
    emit({"tag": tag}, as_json, lambda: None)
