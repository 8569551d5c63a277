"""What cnnlab prints: the user's text (configs, overrides, file contents) as plain text,
never as Rich markup (a saved override holding ``[/some/path]`` must not break a print)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def error(message: str, prefix: str = "cnnlab") -> None:
    """One line on stderr: ``cnnlab: <message>``, the prefix in bold red."""
    err.print(Text.assemble((f"{prefix}:", "bold red"), " ", str(message)))


def note(message: str, prefix: str, style: str = "yellow", stderr: bool = False) -> None:
    (err if stderr else out).print(Text.assemble((f"{prefix}", style), " ", str(message)))
