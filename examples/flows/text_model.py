"""A model flow: evaluate a tiny text "model", store the result in the results database, read it back."""

from __future__ import annotations

from typing import Any

from prefect import task

from lume_platform.results import Result
from lume_platform.tasks import configure_services_task, load_db_result, load_file, lume_flow, save_db_result

VOWELS = set("aeiouAEIOU")


@task(name="evaluate")
def evaluate(text: str, file_text: str | None) -> dict[str, Any]:
    """The model: a few numbers about the text (and whether a file, if given too, holds the same text)."""
    letters = [character for character in text if character.isalpha()]
    return {
        "characters": len(text),
        "words": len(text.split()),
        "vowel_fraction": round(sum(c in VOWELS for c in letters) / len(letters), 6) if letters else 0.0,
        "file_matches_text": None if file_text is None else file_text == text,
    }


@lume_flow(name="text-model")
def text_model(text: str = "", text_file: dict[str, str] | None = None) -> dict[str, Any]:
    """Evaluate ``text`` (or, when it is empty, the text in ``text_file``) and store the result.

    Returns the stored result's reference and its outputs as read back from the results database.
    """
    configure_services_task()
    file_text = load_file(text_file) if text_file is not None else None
    evaluated_text = text or (file_text or "")
    outputs = evaluate(evaluated_text, file_text if text else None)
    result = Result(inputs={"text": text, "text_file": text_file}, outputs=outputs, tags=["example"])
    ref = save_db_result.with_options(name="save_db_result")(result)
    stored_outputs = load_db_result(ref, ["outputs"])
    return {"result": ref, "outputs": stored_outputs}
