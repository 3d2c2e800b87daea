"""The classic LUME-services example: text1 + text2, saved as a TextFile where the parameters say."""

from __future__ import annotations

from lume_platform.tasks import configure_services_task, lume_flow, lume_task, save_file


@lume_task(name="append")
def append(text1: str, text2: str) -> str:
    """The two texts, one after the other."""
    return text1 + text2


@lume_flow(name="append-text")
def append_text(
    text1: str,
    text2: str,
    filename: str = "examples/append_text.txt",
    filesystem_identifier: str = "local",
) -> dict[str, str]:
    """Join ``text1`` and ``text2`` and save the text; returns the saved file's representation."""
    configure_services_task()
    text = append(text1, text2)
    return save_file.with_options(name="save_text_file")(text, filename, filesystem_identifier, "TextFile")
