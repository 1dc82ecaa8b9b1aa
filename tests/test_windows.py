"""Windows: ring eviction, cutover moves, reversal, bounded label tables, and hypothesis invariants."""

from __future__ import annotations

import numpy as np
import pytest
from eventkit import event, fill
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_gate.columns import INVALID, NO_ACTION, SHADOW
from quantum_gate.contract import Skip, SkipReason, Vote
from quantum_gate.modelstats import model_stats
from quantum_gate.streamids import StreamId
from quantum_gate.vocabulary import OTHER_LABEL, LabelTable, ModelTable, Vocabulary
from quantum_gate.windows import Window, window_pair


def new_window(capacity: int, **limits: int) -> Window:
    return Window("post", capacity, Vocabulary.bounded(**limits))


def packed(ms: int, seq: int = 0) -> int:
    return StreamId(ms, seq).packed()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        new_window(0)


def test_empty_window() -> None:
    window = new_window(4)
    assert len(window) == 0
    assert window.keys().size == 0
    assert window.first_last_ms() is None
    assert window.models() == []
    assert window.model("xgb") is None


def test_ring_keeps_the_newest_n_in_order() -> None:
    window = new_window(5)
    for index in range(12):
        window.add(event(1000 + index, {"xgb": ("BUY", index / 100)}, seq=index % 2))
    assert len(window) == 5
    assert window.keys().tolist() == [packed(1000 + i, i % 2) for i in range(7, 12)]
    assert window.first_last_ms() == (1007, 1011)
    columns = window.model("xgb")
    assert columns is not None
    assert columns.confidence.tolist() == [0.07, 0.08, 0.09, 0.10, 0.11]


def test_model_that_stops_voting_leaves_with_its_events() -> None:
    window = new_window(3)
    window.add(event(1, {"xgb": ("BUY", 0.1), "lgbm": ("SELL", 0.2)}))
    window.add(event(2, {"xgb": ("BUY", 0.3), "lgbm": ("SELL", 0.4)}))
    for ms in (3, 4, 5):
        window.add(event(ms, {"xgb": ("HOLD", ms / 10)}))
    lgbm = window.model("lgbm")
    xgb = window.model("xgb")
    assert xgb is not None
    assert lgbm is None  # its two votes were evicted with their events: as if it never voted here
    assert window.models() == ["xgb"]
    assert xgb.confidence.tolist() == [0.3, 0.4, 0.5]
    assert window.vote_matrix().shape == (2, 3)
    assert (window.vote_matrix()[1] == NO_ACTION).all()


def test_late_model_gets_a_row_without_disturbing_earlier_events() -> None:
    window = new_window(10)
    fill(window, [event(ms, {"xgb": ("BUY", 0.6)}) for ms in range(1, 4)])
    window.add(event(4, {"xgb": ("SELL", 0.7), "tft": ("HOLD", 0.42)}))
    tft = window.model("tft")
    xgb = window.model("xgb")
    assert tft is not None and xgb is not None
    assert tft.confidence.tolist() == [0.42]
    assert xgb.confidence.tolist() == [0.6, 0.6, 0.6, 0.7]
    assert window.models() == ["xgb", "tft"]


def test_retain_from_moves_the_cutover() -> None:
    window = new_window(8)
    fill(window, [event(ms, {"xgb": ("BUY", ms / 100)}) for ms in range(1, 11)])  # wrapped: holds 3..10
    dropped = window.retain_from(packed(6))
    assert dropped == 3
    assert window.keys().tolist() == [packed(ms) for ms in range(6, 11)]
    columns = window.model("xgb")
    assert columns is not None
    assert columns.confidence.tolist() == [0.06, 0.07, 0.08, 0.09, 0.10]
    # still a working ring afterwards
    fill(window, [event(ms, {"xgb": ("SELL", ms / 100)}) for ms in range(11, 16)])
    assert window.keys().tolist() == [packed(ms) for ms in range(8, 16)]
    assert window.retain_from(packed(1)) == 0
    assert window.retain_from(packed(100)) == 8
    assert len(window) == 0


def test_retain_from_respects_the_sequence() -> None:
    window = new_window(4)
    fill(window, [event(50, {"xgb": ("BUY", 0.5)}, seq=seq) for seq in range(4)])
    assert window.retain_from(packed(50, 2)) == 2
    assert window.keys().tolist() == [packed(50, 2), packed(50, 3)]


def test_reverse_flips_a_newest_first_backfill() -> None:
    window = new_window(6)
    for ms in (9, 8, 7, 6):  # what XREVRANGE delivers
        window.add(event(ms, {"xgb": ("BUY", ms / 10)}))
    window.reverse()
    assert window.keys().tolist() == [packed(ms) for ms in (6, 7, 8, 9)]
    columns = window.model("xgb")
    assert columns is not None
    assert columns.confidence.tolist() == [0.6, 0.7, 0.8, 0.9]
    window.add(event(10, {"xgb": ("BUY", 1.0)}))
    assert window.keys().tolist()[-1] == packed(10)


def test_reverse_of_a_full_window_keeps_a_working_ring() -> None:
    window = new_window(3)
    for ms in (5, 4, 3):
        window.add(event(ms, {"xgb": ("BUY", ms / 10)}))
    window.reverse()
    window.add(event(6, {"xgb": ("BUY", 0.6)}))
    assert window.keys().tolist() == [packed(4), packed(5), packed(6)]


def test_model_cap_refuses_keys_beyond_it_and_counts() -> None:
    window = new_window(10, max_models=2)
    window.add(event(1, {"a": ("BUY", 0.1), "b": ("BUY", 0.2), "c": ("SELL", 0.3)}))
    window.add(event(2, {"d": ("BUY", 0.4), "a": ("HOLD", 0.5)}))
    assert window.models() == ["a", "b"]
    assert window.model("c") is None and window.model("d") is None
    assert window.counters.refused_keys == 2
    assert window.notes().refused_keys == 2
    assert window.notes().refused_models == {"c": 1, "d": 1}
    a = window.model("a")
    assert a is not None and a.confidence.tolist() == [0.1, 0.5]


def test_refused_keys_from_the_contract_are_counted() -> None:
    window = new_window(3)
    window.add(event(1, {"a": ("BUY", 0.1)}, refused=3))
    window.note_skip(Skip(SkipReason.NO_VALID_VOTES, ("x",), refused_keys=2), StreamId(2, 0))
    assert window.counters.refused_keys == 5
    assert window.counters.skipped == {"no_valid_votes": 1}
    assert window.notes().refused_keys == 5
    assert window.notes().skipped == {"no_valid_votes": 1}


def test_model_table_never_relabels() -> None:
    table = ModelTable(2)
    assert [table.code("x"), table.code("y"), table.code("z"), table.code("x")] == [0, 1, None, 0]
    assert table.names == ["x", "y"]


def test_label_tables_are_bounded() -> None:
    table = LabelTable(6, ("BUY", "SELL", "HOLD"))
    codes = [table.code(f"ACTION{i}") for i in range(10)]
    assert len(table.names) == 6
    assert table.names[:4] == ["BUY", "SELL", "HOLD", OTHER_LABEL]
    assert codes[2:] == [table.lookup(OTHER_LABEL)] * 8
    assert table.overflowed == 8


def test_window_action_variant_and_symbol_labels_stay_bounded() -> None:
    window = new_window(500, max_actions=6, max_variants=5, max_symbols=7)
    for index in range(300):
        vote = Vote("xgb", f"ACT{index}", 0.5, f"variant{index}", False, False)
        window.add(event(index, {"xgb": vote}, side="BUY", symbol=f"SYM{index}"))
    vocabulary = window.vocabulary
    assert len(vocabulary.actions.names) == 6
    assert len(vocabulary.variants.names) == 5
    assert len(vocabulary.symbols.names) == 7
    columns = window.model("xgb")
    assert columns is not None
    other = vocabulary.actions.lookup(OTHER_LABEL)
    assert int(np.count_nonzero(columns.action == other)) == 300 - 2  # two fitted before the table filled


def test_invalid_and_shadow_flags() -> None:
    window = new_window(4)
    window.add(event(1, {"xgb": Vote("xgb", "BUY", 0.6, "patchtst_shadow", True, False)}, invalid=("lgbm",)))
    window.add(event(2, {"xgb": ("BUY", 0.7)}, invalid=("lgbm",)))
    window.note_skip(Skip(SkipReason.NO_VALID_VOTES, ("lgbm",)), StreamId(3, 0))
    xgb, lgbm = window.model("xgb"), window.model("lgbm")
    assert xgb is not None and lgbm is not None
    assert xgb.flags.tolist() == [SHADOW, 0]
    assert lgbm.confidence.size == 0
    assert lgbm.invalid == 3  # two in window events, one in a skipped entry
    assert not (xgb.flags & INVALID).any()


def test_window_pair_shares_one_vocabulary() -> None:
    post, pre = window_pair(5, 7)
    assert post.vocabulary is pre.vocabulary
    assert (post.name, post.capacity, pre.name, pre.capacity) == ("post", 5, "pre", 7)


# ---- hypothesis invariants -------------------------------------------------------------------------

vote_lists = st.lists(
    st.tuples(
        st.integers(0, 3),  # gap in ms to the previous event (0: same ms, next seq)
        st.dictionaries(
            st.sampled_from(["xgb", "lgbm", "nhits"]),
            st.tuples(st.sampled_from(["BUY", "SELL", "HOLD"]), st.floats(-0.5, 1.5, allow_nan=False)),
            min_size=1,
        ),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 20), vote_lists)
def test_window_invariants(capacity: int, steps: list[tuple[int, dict[str, tuple[str, float]]]]) -> None:
    window = new_window(capacity)
    added: list[tuple[int, dict[str, tuple[str, float]]]] = []
    ms, seq = 1_000, 0
    for gap, votes in steps:
        ms, seq = (ms, seq + 1) if gap == 0 else (ms + gap, 0)
        window.add(event(ms, votes, seq=seq))
        added.append((StreamId(ms, seq).packed(), votes))
        assert len(window) <= capacity
    newest = added[-capacity:]
    keys = window.keys().tolist()
    assert len(window) == len(newest)
    assert keys == sorted(keys)
    assert keys == [key for key, _ in newest]
    for model in ("xgb", "lgbm", "nhits"):
        expected = [votes[model] for _, votes in newest if model in votes]
        columns = window.model(model)
        if columns is None:  # never voted, or every vote aged out with its event
            assert not expected
            continue
        assert columns.confidence.tolist() == [confidence for _, confidence in expected]
        names = window.vocabulary.actions.names
        assert [names[code] for code in columns.action.tolist()] == [action for action, _ in expected]
        stats = model_stats(window, model, (0.5,))
        assert stats.samples == len(expected)
        if expected:
            values = np.array([confidence for _, confidence in expected])
            assert stats.mean == float(np.mean(values))
            assert stats.std == float(np.std(values))
            assert stats.presence == len(expected) / len(newest)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(0, 40), min_size=1, max_size=40), st.integers(0, 45))
def test_retain_from_invariant(capacity: int, gaps: list[int], cut: int) -> None:
    window = new_window(capacity)
    ms_values = list(np.cumsum(gaps).tolist())
    for index, ms in enumerate(ms_values):
        window.add(event(int(ms), {"xgb": ("BUY", 0.5)}, seq=index))
    before = window.keys().tolist()
    dropped = window.retain_from(StreamId(cut * 10, 0).packed())
    after = window.keys().tolist()
    assert after == [key for key in before if key >= StreamId(cut * 10, 0).packed()]
    assert dropped == len(before) - len(after)
