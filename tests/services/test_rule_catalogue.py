"""One catalogue: the fix actions each rule lists (services.core.domain.RULES: shown by the CLI's
JSON, the exception card, the evidence pack) are exactly those the action service offers for it
(services.actions.model.RULE_ACTIONS), in the same order — never a fix a user cannot run, never
one the lists do not show."""

from __future__ import annotations

from services.actions.model import RULE_ACTIONS, ActionKind
from services.core.domain import RULES, Team
from services.demo.generator.ground_truth import RULES as PLANTED


def test_every_rule_lists_exactly_the_fixes_the_action_service_offers() -> None:
    assert set(RULES) == set(RULE_ACTIONS)
    differ = {rule: (fixes, tuple(k.value for k in RULE_ACTIONS[rule]))
              for rule, (_, fixes) in RULES.items() if fixes != tuple(k.value for k in RULE_ACTIONS[rule])}
    assert differ == {}


def test_every_listed_fix_is_an_action_kind_and_every_rule_has_an_owner() -> None:
    kinds = {k.value for k in ActionKind}
    for rule, (team, fixes) in RULES.items():
        assert isinstance(team, Team), rule
        assert fixes, f"{rule}: no fix and no accept"
        assert set(fixes) <= kinds, rule


def test_the_demo_plants_every_rule_of_the_catalogue() -> None:
    assert set(PLANTED) == set(RULES)
