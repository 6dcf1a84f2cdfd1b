"""`hackgap sandbox-image build|status`: the team sandbox image for the docker backend."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="Build the team sandbox image offline (mmdebstrap base + the team Python environment).",
    no_args_is_help=True,
)
console = Console()


@app.command("build")
def build(
    force: bool = typer.Option(False, "--force", help="Build even if the tag exists."),
) -> None:
    """Build hackgap/sandbox:<inputs hash> (and :latest); a no-op when it already exists."""
    from sandboxes import image

    def say(message: str) -> None:
        console.print(f"[dim]{message}[/]", highlight=False, soft_wrap=True, markup=False)

    with console.status("Building the sandbox image (first time about 3-4 minutes)..."):
        result = image.build(force=force, say=say)
    verb = "built" if result.built else "up to date:"
    console.print(
        f"{verb} {result.tag} (also {image.IMAGE_REPO}:latest) in {result.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


@app.command("status")
def status(ref: str = typer.Argument("hackgap/sandbox:latest", help="Image reference.")) -> None:
    """Say whether the image is built and built from the current infra/sandbox inputs."""
    from sandboxes import docker as sandbox_docker
    from sandboxes import image

    client = sandbox_docker.engine()
    console.print(image.status(client, ref), highlight=False, soft_wrap=True, markup=False)
