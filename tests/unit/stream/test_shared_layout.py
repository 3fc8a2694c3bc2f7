"""Feature layouts are shared: equal names give one tuple and one code, distinct names never share a code."""

from __future__ import annotations

import threading

from scorer.stream import serving
from scorer.stream.serving import shared_layout


def test_equal_names_share_one_tuple_and_code() -> None:
    a = tuple(f"x{i}" for i in range(20))
    b = tuple(f"x{i}" for i in range(20))
    assert a == b and a is not b
    (names_a, code_a), (names_b, code_b) = shared_layout(a), shared_layout(b)
    assert names_a is names_b and code_a == code_b
    assert shared_layout(("other",))[1] != code_a
    assert shared_layout(a[::-1])[1] != code_a  # the order is the layout


def test_threads_never_give_two_layouts_one_code() -> None:
    layouts = [tuple(f"t{k}-{i}" for i in range(5)) for k in range(400)]
    found: list[list[tuple]] = [[] for _ in range(4)]

    def build(out: list[tuple]) -> None:
        for names in layouts:
            out.append(shared_layout(tuple(list(names))))

    threads = [threading.Thread(target=build, args=(out,)) for out in found]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [code for _, code in found[0]]
    assert len(set(codes)) == len(layouts)
    for other in found[1:]:
        assert [code for _, code in other] == codes
        assert all(x is y for (x, _), (y, _) in zip(found[0], other, strict=True))


def test_beyond_the_cap_a_layout_is_its_own_key(monkeypatch) -> None:
    monkeypatch.setattr(serving, "MAX_LAYOUTS", len(serving._LAYOUTS))
    names = ("never", "seen", "before")
    assert shared_layout(names) == (names, names)
    assert names not in serving._LAYOUTS
