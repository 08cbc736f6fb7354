"""Data cards: `card.json` (for programs) and `card.md` (for people) beside each prepared set.

A card holds: name, task, description, license, sources (package, version,
file, sha256, license), format, files per split, counts per split, the split
rule, the cleaning steps, and, where relevant, the label set and the
generation recipe.
"""

import json
from pathlib import Path

from gpt_tf.datasets.cache import atomic_write_text
from gpt_tf.errors import UserError

CARD_JSON = "card.json"
CARD_MD = "card.md"
CARD_VERSION = 1


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(card):
    """Renders a card dict as Markdown.

    Args:
        card: the card dict (as written to card.json).

    Returns:
        Markdown text.
    """
    lines = [f"# Data card: {card['name']}", "", card.get("description", ""), ""]
    lines += [f"- **Task:** {card.get('task', '')}", f"- **License:** {card.get('license', '')}"]
    if card.get("label_set"):
        lines.append(f"- **Label set:** {', '.join(card['label_set'])}")
    lines.append(f"- **Format:** {card.get('format', '')}")
    if card.get("domain"):
        lines.append(f"- **Domain:** {card['domain']}")
    lines += [
        "",
        "## Sources",
        "",
        "| package | version | file | sha256 | license |",
        "|---|---|---|---|---|",
    ]
    for source in card.get("sources", []):
        lines.append(
            f"| {_cell(source['package'])} | {_cell(source['version'])} | {_cell(source['filename'])} | "
            f"`{source['sha256']}` | {_cell(source.get('license', ''))} |"
        )
    counts = card.get("counts", {})
    columns = sorted({key for split in counts.values() for key in split})
    lines += [
        "",
        "## Counts",
        "",
        "| split | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for split, values in counts.items():
        lines.append(
            f"| {split} | " + " | ".join(_cell(values.get(key, "")) for key in columns) + " |"
        )
    lines += ["", "## Split rule", "", card.get("split_rule", "")]
    if card.get("cleaning"):
        lines += ["", "## Cleaning", ""] + [f"- {step}" for step in card["cleaning"]]
    if card.get("generation"):
        lines += ["", "## Generation recipe", "", card["generation"]]
    if card.get("reserved_sources_excluded"):
        markers = card.get("reserved_source_markers") or {}
        lines += ["", "## Reserved evaluation sources (excluded)", ""]
        lines += [f"- {line}" for line in card["reserved_sources_excluded"]]
        if markers:
            lines.append(f"- scanned for {len(markers.get('checked', []))} phrases only they hold "
                         f"(e.g. \"{markers['checked'][0]}\"): found {markers.get('found') or 'none'}")
    if card.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in card["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def write_card(folder, card):
    """Writes `card.json` and `card.md` into `folder`.

    Args:
        folder: the prepared data set folder.
        card: the card dict; `card_version` is added.
    """
    card = {"card_version": CARD_VERSION, **card}
    folder = Path(folder)
    atomic_write_text(folder / CARD_JSON, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(folder / CARD_MD, render_markdown(card))


def read_card(folder, name):
    """Reads `card.json` from a prepared data set folder.

    Args:
        folder: the prepared data set folder.
        name: the data set name, for the error message.

    Returns:
        The card dict.

    Raises:
        UserError: the set is not prepared (no card) or the card is unreadable.
    """
    path = Path(folder) / CARD_JSON
    if not path.is_file():
        raise UserError(
            f"data set '{name}' is not prepared in {folder}: run `gpt-tf data prepare {name}` first"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(
            f"data set '{name}': the card {path} is unreadable ({error}); "
            f"run `gpt-tf data prepare {name}` again"
        ) from None
