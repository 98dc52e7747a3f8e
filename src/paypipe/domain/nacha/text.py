"""NACHA text fields: the characters a file may carry and the ASCII folding into them."""

import string
import unicodedata
from typing import Final

# Characters a NACHA text field may carry.
ALLOWED_TEXT_CHARS: Final = frozenset(string.ascii_uppercase + string.digits + " &'(),-./#")
# Letters that Unicode decomposition does not reduce to ASCII.
_TRANSLITERATIONS: Final = {
    "Æ": "AE", "æ": "AE", "Œ": "OE", "œ": "OE", "Ø": "O", "ø": "O", "Ł": "L", "ł": "L",
    "Đ": "D", "đ": "D", "Ð": "D", "ð": "D", "Þ": "TH", "þ": "TH", "ß": "SS", "\u0131": "I",
    "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "-",
}  # fmt: skip


def to_nacha_text(value: str) -> str:
    """Upper-case ASCII for a NACHA text field: accents stripped, whitespace collapsed.

    Raises ValueError naming the first character that has no ASCII equivalent.
    """
    if value.isascii():  # nothing to transliterate or decompose
        stripped = value
    else:
        decomposed = unicodedata.normalize("NFKD", "".join(_TRANSLITERATIONS.get(ch, ch) for ch in value))
        stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = " ".join(stripped.upper().split())
    if not ALLOWED_TEXT_CHARS.issuperset(text):
        ch = next(ch for ch in text if ch not in ALLOWED_TEXT_CHARS)
        raise ValueError(f"{value!r}: character {ch!r} is not allowed in a NACHA text field")
    return text
