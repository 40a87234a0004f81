"""The People page's selection, shared by every page that acts on it: the filters read
from a request (quick filters, then the advanced rule groups compiled by the segment
compiler), the ticked rows or "all N matching", and keyset page ids."""

from django.utils import timezone
from django.utils.http import urlencode

from audiences import selectors as audience_selectors
from people import selectors
from people.attributes import BUILTIN_ATTRIBUTES
from people.forms import (
    BuilderError,
    QuickFilterForm,
    apply_builder_action,
    builder_tree,
    parse_builder,
    whole_number,
)
from segments.rules import RuleError, compile_rules, parse_rules
from segments.rules.operators import offered_ops, op_choices, value_kind


def _attribute_types(catalogue) -> dict[str, str]:
    types = dict(BUILTIN_ATTRIBUTES)
    for key, definition in catalogue.items():
        types[key] = definition.type
    return types


class FilteredPeople:
    """The People page's filters read from a request: quick filters, then the advanced
    rule groups compiled by the segment compiler. Shared by the list, bulk actions and
    export so that "all N matching" means exactly what the page showed."""

    def __init__(self, request, data):
        workspace = request.workspace
        self.form = QuickFilterForm(data)
        self.catalogue = selectors.attribute_catalogue(workspace=workspace)
        self.types = _attribute_types(self.catalogue)
        self.groups = apply_builder_action(parse_builder(data), data.get("builder", ""))
        self.builder_error: BuilderError | None = None
        self.rule_error: str = ""
        self.tree = None
        people = selectors.person_filter(workspace=workspace, filters=self.form.filters())
        self.filter_error = ""
        if not self.form.is_valid():
            # An unreadable filter must never widen a selection ("all N matching").
            self.filter_error = "These filters cannot be read: " + " ".join(
                f"{self.form.fields[name].label or name}: {' '.join(errors)}"
                for name, errors in self.form.errors.items()
            )
            people = people.none()
        self.audience_error = ""
        audience = self.form.audience_name()
        if audience:
            narrowed = audience_selectors.people_in_audience(
                people, workspace=workspace, name=audience
            )
            if narrowed is None:
                self.audience_error = f"There is no target audience named “{audience}”."
                people = people.none()
            else:
                people = narrowed
        self.message_rule = self.form.message_rule()
        if self.message_rule is not None:
            # one EXISTS over the send ledger, compiled like the advanced filters
            parsed = parse_rules(self.message_rule, workspace=workspace)
            people = people.filter(compile_rules(parsed, workspace=workspace, now=timezone.now()))
        try:
            self.tree = builder_tree(self.groups, self.types)
        except BuilderError as e:
            self.builder_error = e
        if self.tree is not None:
            try:
                parsed = parse_rules(self.tree, workspace=workspace)
                people = people.filter(
                    compile_rules(parsed, workspace=workspace, now=timezone.now())
                )
            except RuleError as e:
                self.rule_error = str(e)
                people = people.none()
        if self.builder_error:
            people = people.none()
        self.people = people
        self.sort = selectors.person_sort(data.get("sort"))

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The filters as (name, value) pairs: for links and forms that keep them."""
        pairs = [(k, v) for k, v in self.form.data.items() if k in self.form.fields and v]
        for g, rows in enumerate(self.groups):
            for r, row in enumerate(rows):
                for name, value in row.items():
                    if value:
                        pairs.append((f"c-{g}-{r}-{name}", value))
        if self.sort is not selectors.DEFAULT_PERSON_SORT:
            pairs.append(("sort", self.sort.key))
        return pairs

    @property
    def filter_pairs(self) -> list[tuple[str, str]]:
        """The filters without the order: for the links and form that change the order."""
        return [(name, value) for name, value in self.pairs if name != "sort"]

    def sort_links(self) -> list[dict]:
        """The People table's sortable columns: a click sorts by one (A to Z first, then
        Z to A), keeping the filters."""
        base = urlencode(self.filter_pairs)
        links = {}
        for column in ("external_id", "name", "email", "city"):
            current = self.sort.column == column
            key = f"-{column}" if current and not self.sort.descending else column
            aria = ""
            if current:
                aria = "descending" if self.sort.descending else "ascending"
            links[column] = {
                "href": "?" + (f"{base}&" if base else "") + urlencode({"sort": key}),
                "aria_sort": aria,
                "icon": ("bi-sort-down" if self.sort.descending else "bi-sort-up")
                if current
                else "",
            }
        return links

    @property
    def has_conditions(self) -> bool:
        """Whether an advanced condition has anything filled in (the empty row every
        submit of the page posts back does not open the advanced filters)."""
        return any(any(row.values()) for rows in self.groups for row in rows)

    @property
    def segment_rules(self) -> dict | None:
        """The page's filters as one rule tree, for "Save as segment" (the search box has
        no rule: it is left out, and the page says so). None when nothing filters."""
        if self.filter_error or self.builder_error or self.rule_error or self.audience_error:
            return None
        data = self.form.cleaned_data
        nodes = []
        for name in self.form.filters().tags:
            nodes.append({"tag": name, "op": "has"})
        for name in ("gender", "country", "city", "company"):
            value = (data.get(name) or "").strip()
            if value:
                nodes.append({"attribute": name, "op": "is", "value": value})
        if (data.get("address") or "").strip():
            nodes.append(
                {"attribute": "address", "op": "contains", "value": data["address"].strip()}
            )
        if self.form.audience_name():
            nodes.append({"audience": self.form.audience_name(), "op": "in"})
        if self.message_rule is not None:
            nodes.append(self.message_rule)
        if self.tree is not None:
            nodes.append(self.tree)
        if not nodes:
            return None
        return nodes[0] if len(nodes) == 1 else {"all": nodes}

    @property
    def querystring(self) -> str:
        return urlencode(self.pairs)

    def builder_rows(self):
        """Rows for the template, with the operators and input that fit each attribute."""
        groups = self.groups or [[{}]]
        out = []
        for g, rows in enumerate(groups):
            out_rows = []
            for r, row in enumerate(rows or [{}]):
                attr_type = self.types.get(row.get("attribute", ""), "")
                ops = offered_ops(attr_type)
                op = row.get("op") if row.get("op") in ops else (ops[0] if ops else "")
                error = (
                    self.builder_error.message
                    if self.builder_error
                    and (self.builder_error.group, self.builder_error.row) == (g, r)
                    else ""
                )
                out_rows.append(
                    {
                        "g": g,
                        "r": r,
                        "row": row,
                        "type": attr_type,
                        "op": op,
                        "ops": op_choices(ops),
                        "kind": value_kind(attr_type, op) if op else "none",
                        "error": error,
                    }
                )
            out.append(out_rows)
        return out


def page_key(value: str) -> int | None:
    """A Herald id from ?after= / ?before= (keyset pages), or None for anything that is
    not one (so a mangled link shows the first page, never an error)."""
    return whole_number(value)


def selected_people(request, view: FilteredPeople):
    """The people a bulk action applies to: the ticked rows or "all N matching"."""
    if request.POST.get("all_matching") == "1":
        return view.people
    ids = [whole_number(i) for i in request.POST.getlist("person")]
    return view.people.filter(id__in=[i for i in ids if i is not None])
