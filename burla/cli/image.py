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
@json_option
def image_build(mirror: str | None, as_json: bool) -> None:
    """Build the default worker image on this machine (about a minute, once; needs root).

    Debian bookworm with python3, made with debootstrap and imported into the local
    Docker engine: no registry is used. Prints progress and the image's tag.

    \b
    Example:
      burla image build
    """
    from burla.backends.docker.image import DEFAULT_MIRROR, build_default_image

    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    tag = build_default_image(mirror=mirror or DEFAULT_MIRROR, echo=echo)
    emit({"tag": tag}, as_json, lambda: None)
