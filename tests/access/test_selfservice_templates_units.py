"""Template scopes and the self-service role, pure (issue 18 part 5): ``template:NAME``
parses, reaches that template only (a host grant reaches every template, a VM or tag
grant none); the built-in "Self-service user" deploys and reads only its templates;
``allows_somewhere`` is what the gate asks for routes that check their own target."""

from __future__ import annotations

import pytest

from viridian.access.policy import Grant, Policy
from viridian.access.principal import BOOTSTRAP, Principal
from viridian.access.roles import BUILTIN_ROLES
from viridian.access.scopes import Target, parse_scope, scope_covers

SAM = Principal("sam", "local", "session", frozenset({"web"}))
BASE = Target(template="base")


def test_template_scope_parses_and_labels() -> None:
    assert parse_scope(" template:base ") == "template:base"
    with pytest.raises(ValueError, match="template:NAME"):
        parse_scope("template:")
    assert BASE.label() == "template:base"


def test_template_scope_reaches_that_template_only() -> None:
    assert scope_covers("template:base", BASE)
    assert not scope_covers("template:base", Target(template="other"))
    assert not scope_covers("template:base", Target(vm="base"))
    assert not scope_covers("template:base", Target())
    assert scope_covers("host", BASE)
    assert not scope_covers("vm:base", BASE) and not scope_covers("tag:base", BASE)


def test_self_service_role_on_a_template() -> None:
    policy = Policy(BUILTIN_ROLES, [Grant(1, "Self-service user", "@web", "template:base")])
    assert policy.allows(SAM, "template.deploy", BASE)
    assert policy.allows(SAM, "library.read", BASE)
    assert not policy.allows(SAM, "template.deploy", Target(template="other"))
    assert not policy.allows(SAM, "library.read", Target())
    assert not policy.allows(SAM, "vm.create", Target())
    assert policy.allows_somewhere(SAM, "template.deploy")
    assert not policy.allows_somewhere(SAM, "vm.create")
    narrowed = Principal("sam", "local", "token", frozenset({"web"}), token_role="Viewer")
    assert not policy.allows_somewhere(narrowed, "template.deploy")
    assert Policy(BUILTIN_ROLES, []).allows_somewhere(BOOTSTRAP, "template.deploy")


def test_administrator_deploys_every_template() -> None:
    policy = Policy(BUILTIN_ROLES, [Grant(1, "Administrator", "sam", "host")])
    assert policy.allows(SAM, "template.deploy", Target(template="anything"))
