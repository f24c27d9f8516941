"""Token ids: raw bytes 0-255 plus special tokens, inside a 65,536-id vocabulary.

Why 65,536: the design's parameter counts (tiny 13.5M, small 56M) assume one tied 65,536-row
embedding (architecture.md §0/§4). Only the first `N_ACTIVE` ids ever occur, so the LM head scores
just those rows (no 65,536-way softmax per byte); the rest of the table is reserved (e.g. for
future word-level or label tokens) and stays untouched by gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

VOCAB_SIZE = 65536
N_BYTES = 256

# Order is part of the checkpoint contract: never reorder, only append.
SPECIAL_TOKENS: tuple[str, ...] = (
    "PAD",   # padding (masked out of losses, pooling and boundary statistics)
    "BOS",   # start of a pretraining document
    "EOS",   # end of a pretraining document
    "CLS",   # start of a serialized column
    "SEP",   # end of one column's segment
    "MASK",  # reserved for masked objectives
    "TGT",   # role marker: the target column follows
    "CTX",   # role marker: a context column follows
    "MAIN",  # role marker: the CPA main (subject) column follows
    "COLON", # separates column name from values
    "CELL",  # separates cells (rendered as " | " in the human-readable form)
    "NULL",  # an empty cell
)
SPECIAL_IDS: dict[str, int] = {name: N_BYTES + i for i, name in enumerate(SPECIAL_TOKENS)}
N_ACTIVE = N_BYTES + len(SPECIAL_TOKENS)  # ids that can occur; the LM head scores only these

PAD = SPECIAL_IDS["PAD"]
BOS = SPECIAL_IDS["BOS"]
EOS = SPECIAL_IDS["EOS"]
CLS = SPECIAL_IDS["CLS"]
SEP = SPECIAL_IDS["SEP"]
MASK = SPECIAL_IDS["MASK"]
TGT = SPECIAL_IDS["TGT"]
CTX = SPECIAL_IDS["CTX"]
MAIN = SPECIAL_IDS["MAIN"]
COLON = SPECIAL_IDS["COLON"]
CELL = SPECIAL_IDS["CELL"]
NULL = SPECIAL_IDS["NULL"]


@dataclass(frozen=True)
class VocabInfo:
    """The vocabulary facts a checkpoint records, so a loader can refuse a mismatch."""

    vocab_size: int = VOCAB_SIZE
    n_active: int = N_ACTIVE
    specials: tuple[str, ...] = SPECIAL_TOKENS

    def to_dict(self) -> dict:
        return {"vocab_size": self.vocab_size, "n_active": self.n_active, "specials": list(self.specials)}


def encode_text(text: str) -> list[int]:
    """UTF-8 bytes of `text` as ids. Lone surrogates are replaced, never raised on."""
    return list(text.encode("utf-8", errors="replace"))


def decode_ids(ids) -> str:
    """Human-readable rendering: bytes decoded with replacement, specials as [NAME]."""
    out: list[str] = []
    buf = bytearray()
    for i in ids:
        i = int(i)
        if i < N_BYTES:
            buf.append(i)
            continue
        if buf:
            out.append(buf.decode("utf-8", errors="replace"))
            buf.clear()
        name = SPECIAL_TOKENS[i - N_BYTES] if i < N_ACTIVE else f"ID{i}"
        out.append(f"[{name}]")
    if buf:
        out.append(buf.decode("utf-8", errors="replace"))
    return "".join(out)
