"""Segment rules: parse a JSON tree (schema), compile it to SQL (compiler), say it in words.

tree = parse_rules(payload, workspace=ws)  # RuleError(path="all.2.value", ...)
people = Person.objects.for_workspace(ws).filter(compile_rules(tree, workspace=ws, now=now))
"""

from segments.rules.compiler import compile_rules, explain_rules
from segments.rules.describe import describe_rules
from segments.rules.schema import RuleError, check_catalogue, iter_nodes, parse_rules

__all__ = [
    "RuleError",
    "check_catalogue",
    "compile_rules",
    "describe_rules",
    "explain_rules",
    "iter_nodes",
    "parse_rules",
]
