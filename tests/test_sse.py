from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmrelay._sse import SSEDecoder, encode_sse
from recordings import load_sse


def decode_all(pieces: list[bytes]) -> list[tuple[str | None, str]]:
    dec = SSEDecoder()
    out = []
    for piece in pieces:
        out += [(e.event, e.data) for e in dec.feed(piece)]
    out += [(e.event, e.data) for e in dec.flush()]
    return out


def test_lf_crlf_and_cr_framings_decode_the_same() -> None:
    text = 'event: a\ndata: {"x": 1}\n\n: keep-alive\n\ndata: line1\ndata: line2\n\n'
    expected = [("a", '{"x": 1}'), (None, "line1\nline2")]
    for sep in ("\n", "\r\n", "\r"):
        assert decode_all([text.replace("\n", sep).encode()]) == expected


def test_comment_lines_and_empty_keepalives_are_ignored() -> None:
    assert decode_all([b": ping\n\n\n\n: PROCESSING\n\ndata: x\n\n"]) == [(None, "x")]


def test_last_event_without_blank_line_is_flushed() -> None:
    assert decode_all([b"data: tail"]) == [(None, "tail")]


def test_multibyte_character_split_across_reads() -> None:
    data = "data: héllo wörld 🌍\n\n".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]
    assert decode_all(pieces) == [(None, "héllo wörld 🌍")]


def test_recorded_anthropic_stream_every_split_point() -> None:
    raw = load_sse("anthropic-stream-tool-use-input-json-delta.sse")
    whole = decode_all([raw])
    assert [e for e, _ in whole][:3] == ["message_start", "content_block_start", "ping"]
    assert whole[-1][0] == "message_stop"
    for cut in range(0, len(raw), 7):
        assert decode_all([raw[:cut], raw[cut:]]) == whole


events = st.lists(
    st.tuples(
        st.one_of(
            st.none(),
            st.text(
                alphabet=st.characters(blacklist_characters="\r\n:", blacklist_categories=("Cs",), min_codepoint=32),
                min_size=1,
            ),
        ),
        st.text(
            alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",), min_codepoint=32),
            min_size=1,
        ),
    ),
    max_size=8,
)


@given(events, st.sampled_from(["\n", "\r\n", "\r"]), st.integers(min_value=1, max_value=13))
def test_encode_then_decode_round_trips(evs: list[tuple[str | None, str]], sep: str, step: int) -> None:
    wire = b"".join(encode_sse(data, event) for event, data in evs).replace(b"\n", sep.encode())
    pieces = [wire[i : i + step] for i in range(0, len(wire), step)]
    expected = [(e.strip() if e is not None else None, d) for e, d in evs]
    got = decode_all(pieces)
    assert [(e.strip() if e is not None else None, d) for e, d in got] == expected


def reference_events(text: str) -> list[tuple[str | None, str, str | None]]:
    """The SSE spec's rules, line by line over the whole text (no chunking, no fast path)."""
    out: list[tuple[str | None, str, str | None]] = []
    data: list[str] = []
    event: str | None = None
    last_id: str | None = None
    for line in [*text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), ""]:
        if not line:
            if data:
                out.append((event, "\n".join(data), last_id))
            data, event = [], None
        elif line.startswith(":"):
            continue
        else:
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                last_id = value
    return out


sse_line = st.one_of(
    st.builds(lambda v: f"data: {v}", st.text(alphabet='ab{}" é', max_size=6)),
    st.builds(lambda v: f"data:{v}", st.text(alphabet="ab ", max_size=3)),
    st.builds(lambda v: f"event: {v}", st.text(alphabet="xyz", min_size=1, max_size=3)),
    st.builds(lambda v: f"id: {v}", st.text(alphabet="123", min_size=1, max_size=2)),
    st.just(": keep-alive"),
    st.just("data"),
    st.just(""),
)
sse_blocks = st.lists(st.lists(sse_line, min_size=1, max_size=3), max_size=12)  # events: lines, then a blank line


@given(sse_blocks, st.sampled_from(["\n", "\r\n", "\r"]), st.lists(st.integers(min_value=1, max_value=9), max_size=20))
def test_any_lines_in_any_pieces_decode_as_the_spec_says(blocks: list[list[str]], sep: str, cuts: list[int]) -> None:
    text = "".join(sep.join(lines) + sep + sep for lines in blocks)
    wire = text.encode()
    pieces, at = [], 0
    for size in cuts:
        pieces.append(wire[at : at + size])
        at += size
    pieces.append(wire[at:])
    dec = SSEDecoder()
    got = [(e.event, e.data, e.id) for piece in pieces for e in dec.feed(piece)]
    got += [(e.event, e.data, e.id) for e in dec.flush()]
    assert got == reference_events(text)
