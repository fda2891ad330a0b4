"""The few fields of a shard sample's `json` member the pretraining loader reads, decoded typed.

Why typed decoding (msgspec) and not `json.loads`: a sample's json is ~2-3 KB (verdicts,
candidates, lemmas, tags, every graph node's lemma and links), and the loader needs a tenth of
it: key, caption, the text stage's tokens and POS, graph node kinds/spans/tokens, region names and
image size. `json.loads` builds a Python object for every field of it (~30 us per sample, the
loader's largest decoding cost); a decoder for a schema of only the needed fields skips the rest
in C (~9 us). A json that does not fit these types (an older or hand-made shard) returns None, and
the caller decodes it the general way, so nothing is lost.
"""

from __future__ import annotations

import msgspec


class Node(msgspec.Struct):
    kind: str = ""
    span: tuple[int, int] = (0, 0)
    tokens: tuple[int, ...] | None = None


class Text(msgspec.Struct):
    tokens: list[str] | None = None
    upos: list[str] | None = None
    graph: list[Node] | None = None


class Regions(msgspec.Struct):
    num_boxes: int = 0
    obj_names: list[str | None] | None = None
    image_h: int = 1
    image_w: int = 1


class Meta(msgspec.Struct):
    key: str
    caption: str | None = None
    text: Text | None = None
    regions: Regions | None = None


_DECODER = msgspec.json.Decoder(Meta)


def decode_meta(raw: bytes) -> Meta | None:
    """The loader's fields of one sample json; None when it does not fit (decode it generally)."""
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
