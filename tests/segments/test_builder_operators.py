"""One operator table and one built-in list behind both rule builders (the People page's
advanced filters and the segment builder) and the descriptions."""

import pytest

from people.attributes import BUILTIN_ATTRIBUTES, BUILTIN_LABELS
from people.models import BUILTIN_FIELDS, AttributeType
from segments import forms as segment_forms
from segments.rules import operators, schema


def test_every_operator_of_the_schema_has_its_words_and_nothing_else_does():
    assert set(operators.OP_LABELS) == set(schema.ATTRIBUTE_OPS)
    assert set(operators.OP_PHRASES) == set(schema.ATTRIBUTE_OPS)
    assert set(operators.PROPERTY_OPS) <= set(schema.ATTRIBUTE_OPS)
    assert set(operators.COUNT_LABELS) == set(schema.COUNT_OPS)
    assert set(operators.TIME_LABELS) == set(schema.TIME_OPS)
    assert set(operators.TAG_LABELS) == set(schema.TAG_OPS)
    assert set(operators.MEMBERSHIP_LABELS) == set(schema.MEMBERSHIP_OPS)


@pytest.mark.parametrize("attr_type", list(AttributeType))
def test_a_builder_offers_only_operators_the_schema_accepts(attr_type):
    offered = operators.offered_ops(attr_type)
    assert offered
    assert set(offered) <= set(schema.OPS_BY_TYPE[attr_type])


def test_both_builders_offer_the_same_operators_with_the_same_labels():
    """The People page's filters (people.selection) and the segment builder read one table."""
    from people import selection

    for attr_type in AttributeType:
        assert segment_forms._attribute_ops(attr_type) == operators.offered_ops(attr_type)
    assert selection.offered_ops is operators.offered_ops
    assert selection.op_choices is operators.op_choices


def test_what_the_builders_offer_for_each_type():
    offered = {t.value: operators.offered_ops(t) for t in AttributeType}
    assert offered == {
        "string": [
            "is", "is_not", "in", "not_in", "starts_with", "ends_with", "contains",
            "not_contains", "is_empty", "is_not_empty",
        ],
        "number": [
            "is", "is_not", "lt", "lte", "gte", "gt", "in", "not_in", "is_empty", "is_not_empty",
        ],
        "boolean": ["is", "is_not", "is_empty", "is_not_empty"],
        "date": [
            "before", "until", "since", "after", "was", "was_within", "was_more_than",
            "will_be_in", "will_be_within", "will_be_more_than", "is_empty", "is_not_empty",
        ],
        "datetime": [
            "before", "until", "since", "after", "was", "was_within", "was_more_than",
            "will_be_in", "will_be_within", "will_be_more_than", "is_empty", "is_not_empty",
        ],
        "list": ["contains", "not_contains", "is_empty", "is_not_empty"],
    }  # fmt: skip
    assert operators.offered_ops("no such type") == []


def test_one_built_in_list():
    assert list(BUILTIN_ATTRIBUTES) == [*BUILTIN_FIELDS, "created_at"]
    assert set(BUILTIN_LABELS) == set(BUILTIN_ATTRIBUTES)
    assert schema.BUILTIN_ATTRIBUTES is BUILTIN_ATTRIBUTES
    catalogue = segment_forms.make_catalogue(
        definitions={}, events=[], tags=[], audiences=[], segments=[]
    )
    assert catalogue.types == BUILTIN_ATTRIBUTES
    assert [key for key, _ in catalogue.attribute_choices] == list(BUILTIN_ATTRIBUTES)
    assert catalogue.attribute_choices[0] == ("external_id", "External ID")
