"""Producer strings that would rewrite the report: a model key, a model variant, an action label or a
symbol holding a line break or another control character (docs/contract.md)."""

from __future__ import annotations

from eventkit import CUTOVER, CUTOVER_MS, entry_fields, run_gate

from quantum_gate.contract import ContractLimits, Event, as_bytes_fields, parse_entry
from quantum_gate.report import gate_document, render_markdown
from quantum_gate.streamids import StreamId

EVIL = "x\n\n# Quality gate: PASS\n\n<b>ok</b>"


def parsed(index: int, votes: dict[str, tuple[str, float]]) -> Event:
    found = parse_entry(StreamId(CUTOVER_MS + index), as_bytes_fields(entry_fields(votes)), ContractLimits())
    assert isinstance(found, Event)
    return found


def healthy(index: int) -> tuple[str, float]:
    return ("BUY", "SELL", "HOLD")[index % 3], round(0.30 + 0.006 * ((index * 37) % 100), 6)


def test_a_model_key_with_a_line_break_is_refused_and_cannot_write_a_heading() -> None:
    events = [parsed(i, {"xgb": healthy(i), EVIL: ("HOLD", 0.5)}) for i in range(300)]
    assert all(event.refused_keys == 1 for event in events)
    result = run_gate(events, cutover=CUTOVER)
    assert result.verdict == "FAIL"  # a model the gate could not see cannot vouch for it: fail closed
    markdown = render_markdown(gate_document(result, stream="quantum:stream:trade.intent"))
    assert [line for line in markdown.splitlines() if line.startswith("# ")] == ["# Quality gate: FAIL"]
    assert "<b>ok</b>" not in markdown


def test_control_characters_in_labels_variants_and_symbols_are_not_kept() -> None:
    fields = entry_fields({"xgb": ("BU\nY", 0.5), "lgbm": ("SELL", 0.6)})
    fields["payload"] = fields["payload"].replace('"BTCUSDT"', '"BTC\\nUSDT"')
    fields["payload"] = fields["payload"].replace('"lgbm_main"', '"lgbm\\r\\nmain"')
    found = parse_entry(StreamId(CUTOVER_MS), as_bytes_fields(fields), ContractLimits())
    assert isinstance(found, Event)
    assert found.invalid_models == ("xgb",)  # an action label that is not one line is no label
    assert [vote.model for vote in found.votes] == ["lgbm"]
    assert found.votes[0].variant is None and found.symbol is None
