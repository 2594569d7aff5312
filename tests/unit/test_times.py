"""The one parser for typed times (core/times.py): one rule, the same answer everywhere."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from bson.timestamp import Timestamp

from backup_dr.core.errors import PolicyError
from backup_dr.core.policy import parse_policy, read_policy_document
from backup_dr.core.times import BadTimeInput, TimeRule, parse_optional, parse_user_time

SEOUL = TimeRule("Asia/Seoul", "policy_timezone")
STRICT = TimeRule("Asia/Seoul", "refuse")
POLICY = Path(__file__).resolve().parents[2] / "include" / "policy.yaml"


def test_a_kst_wall_time_without_offset_is_read_in_the_policy_zone_and_said_back():
    t = parse_user_time("2026-11-26T14:30:00", SEOUL, what="point_in_time")
    assert t.at == datetime(2026, 11, 26, 5, 30, tzinfo=timezone.utc)
    assert t.echo() == ("'2026-11-26T14:30:00' read as policy time zone Asia/Seoul = 2026-11-26T05:30:00Z (UTC) "
                        "= 2026-11-26 14:30:00 KST (Asia/Seoul)")
    d = t.as_dict()
    assert d["utc"] == "2026-11-26T05:30:00Z" and d["local"] == "2026-11-26T14:30:00+09:00"


@pytest.mark.parametrize("text", ["2026-11-26T14:30:00+09:00", "2026-11-26T05:30:00Z", "2026-11-26T05:30:00z",
                                  "2026-11-26 05:30:00+00:00", " 2026-11-26T00:30:00-05:00 "])
def test_an_explicit_offset_wins_under_either_rule(text):
    for rule in (SEOUL, STRICT, None):
        assert parse_user_time(text, rule).at == datetime(2026, 11, 26, 5, 30, tzinfo=timezone.utc)
    assert "explicit offset" in parse_user_time(text, SEOUL).read_as


def test_without_the_opt_in_a_naive_time_is_refused_with_both_fixes():
    with pytest.raises(BadTimeInput) as e:
        parse_user_time("2026-11-26T14:30", STRICT, what="--at")
    msg = str(e.value)
    assert "--at '2026-11-26T14:30' has no time zone" in msg
    assert "2026-11-26T14:30+09:00" in msg and "naive_times: policy_timezone" in msg
    with pytest.raises(BadTimeInput):
        parse_user_time("2026-11-26T14:30", None)


def test_oplog_positions_only_where_allowed_and_garbage_named():
    assert parse_user_time("Timestamp(1795684470, 12)", SEOUL, allow_timestamp=True).at == Timestamp(1795684470, 12)
    with pytest.raises(BadTimeInput, match="only accepted as a point-in-time"):
        parse_user_time("Timestamp(1795684470, 12)", SEOUL)
    with pytest.raises(BadTimeInput, match="below 2\\^32"):
        parse_user_time("Timestamp(4294967296, 0)", SEOUL, allow_timestamp=True)
    with pytest.raises(BadTimeInput, match="'yesterday' is not an ISO 8601 time"):
        parse_user_time("yesterday", SEOUL, what="incident_time")
    with pytest.raises(BadTimeInput, match="is empty"):
        parse_user_time("  ", SEOUL)
    assert parse_optional("None", SEOUL) is None and parse_optional("", SEOUL) is None


def test_a_wall_time_a_dst_change_skips_or_repeats_is_refused():
    berlin = TimeRule("Europe/Berlin", "policy_timezone")
    with pytest.raises(BadTimeInput, match="does not name one instant"):
        parse_user_time("2026-03-29T02:30:00", berlin)  # skipped (spring forward)
    with pytest.raises(BadTimeInput, match="does not name one instant"):
        parse_user_time("2026-10-25T02:30:00", berlin)  # happens twice (fall back)
    assert parse_user_time("2026-10-25T02:30:00+01:00", berlin).at == datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc)


def _doc(**defaults):
    doc = read_policy_document(POLICY)
    doc["defaults"].pop("naive_times")
    doc["defaults"].update(defaults)
    return doc


def test_the_policy_opt_in_and_its_zone_are_validated():
    assert TimeRule.of(parse_policy(read_policy_document(POLICY))) == SEOUL  # the shipped policy opts in
    assert TimeRule.of(parse_policy(_doc())) == STRICT  # the key alone decides; the default is refuse
    assert TimeRule.of(parse_policy(_doc(naive_times="policy_timezone"))) == SEOUL
    with pytest.raises(PolicyError) as e:
        parse_policy(_doc(timezone="Asia/Seol", naive_times="guess"))
    text = str(e.value)
    assert "defaults.timezone: 'Asia/Seol' is not a time zone (use an IANA name such as 'Asia/Seoul'" in text
    assert "defaults.naive_times: 'guess' is not one of: refuse, policy_timezone" in text
