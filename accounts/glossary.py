"""Herald's words: one definition per term, shown on the Glossary page and reused by the
help texts that explain them (a segment kind's help on the builder, the segment page, the
hints that link to a term), so a word means the same on every page.

The words to use, and the ones not to:
- people (one person), never contacts, customers, users or subscribers;
- members: the people in a segment or a target audience; the people who sign in to a
  workspace are its team (Settings -> Team), never "members";
- reachable: has an address on a channel that is not on Do Not Contact.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    key: str
    word: str
    definition: str


TERMS = [
    Term(
        "person",
        "Person, people",
        "Someone your workspace can reach: a profile with built-in fields (name, email, "
        "phone, city…), custom attributes, events and tags, known by its external ID.",
    ),
    Term(
        "external-id",
        "External ID",
        "Your own system's identifier for a person, unique in the workspace. Imports and "
        "the API find people by it (or by email or phone).",
    ),
    Term(
        "attribute",
        "Attribute",
        "A typed field of a person: built-in (email, phone, city…) or custom, listed with "
        "its label and type on the Attributes page.",
    ),
    Term(
        "event",
        "Event",
        "Something a person did, at a moment, with properties: “Order Completed” with a "
        "total, “App Launch”.",
    ),
    Term("tag", "Tag", "A label put on people by hand, by an import or by the API."),
    Term(
        "segment",
        "Segment",
        "A group of people, defined by rules, by hand or as everyone. The people in it are "
        "its members.",
    ),
    Term(
        "snapshot",
        "Snapshot segment",
        "Worked out afresh from its rules each time it is opened or counted; a campaign or "
        "flow that uses it freezes its members when it starts.",
    ),
    Term(
        "realtime",
        "Real-time segment",
        "People enter and leave as their data changes, and each entry and exit is kept: "
        "what flows start from. Its rules cannot change after creation.",
    ),
    Term(
        "query",
        "Scheduled query segment",
        "Recomputed from its rules on a schedule, every N minutes; between two refreshes "
        "its members are those of the last one.",
    ),
    Term(
        "static",
        "Static segment",
        "A list of people kept by hand: added from the People page or an import, removed "
        "on the segment's page. No rules.",
    ),
    Term("everyone", "Everyone", "A segment of every person in the workspace."),
    Term(
        "members",
        "Members",
        "The people in a segment or a target audience. A target audience's members each "
        "show where they came from: a segment (named), the People page or an import.",
    ),
    Term(
        "audience",
        "Target audience",
        "A named list of people filled from segments, the People page or a CSV import. "
        "It keeps its members until you change them: a segment added to it is copied in "
        "once, not followed.",
    ),
    Term(
        "dnc",
        "Do Not Contact",
        "Addresses, per channel (email, SMS, push), that Herald never sends anything to, "
        "whatever a campaign or flow says.",
    ),
    Term(
        "reachable",
        "Reachable",
        "Has an address on a channel (an email, a phone, a push device) that is not on Do "
        "Not Contact.",
    ),
    Term(
        "team",
        "Team",
        "The people who sign in to a workspace, each with a role (viewer, ops, marketer, "
        "admin, owner). Settings → Team.",
    ),
]

GLOSSARY = {term.key: term for term in TERMS}


def definition(key: str) -> str:
    """The definition of the term `key` (a KeyError names a term the glossary lacks)."""
    return GLOSSARY[key].definition
