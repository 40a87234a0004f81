"""What the analyze screen shows before the user confirms an import.

From the first 64 KB: encoding, separator, header, a preview of the first rows and a
suggested mapping of columns to fields (built-ins, existing custom attributes, new custom
attributes with an inferred type, or ignore). Then one streamed pass over the whole file
with the chosen mapping: rows, rows in error (the first ones with line and reason, all of
them in the error report), and how many people are new and how many exist. That count is
set-based: the keys are COPYed into a TEMP table and joined with people (staging.resolve),
the same resolution the import itself uses, so the numbers agree.
"""

from collections import Counter

from django.db import connection, transaction
from django.utils import timezone

from accounts.jobs import media_path
from people.imports import staging
from people.imports.checking import helper_count, stage_file
from people.imports.report import error_report
from people.imports.rows import (
    ATTRIBUTE,
    DEDUPE_KEYS,
    FIELD_LABELS,
    IGNORE,
    MappedColumn,
    apply_definitions,
    attribute_key_for,
    infer_text_type,
    mapping_problems,
)
from people.imports.source import (
    PREVIEW_ROWS,
    SEPARATOR_LABELS,
    SourceError,
    normalize_header,
    read_sample,
    sniff,
)
from people.models import AttributeDefinition, ContactImport

PROGRESS_EVERY = 50_000
INFERENCE_ROWS = 200  # sample rows used to suggest a type for a new attribute
# Each column is three fields of the analyze form; Django refuses a form of more than
# DATA_UPLOAD_MAX_NUMBER_FIELDS (1000) fields.
MAX_COLUMNS = 300
ANALYZE_COLUMNS = ["line", "key", "external_id"]

# Header spellings (normalized by source.normalize_header) -> built-in field.
ALIASES = {
    "external_id": [
        "external_id", "externalid", "ext_id", "id", "user_id", "userid", "customer_id",
        "customerid", "contact_id", "contactid", "client_id", "member_id", "crm_id",
    ],
    "email": ["email", "e_mail", "email_address", "mail", "emailaddress", "courriel"],
    "phone": [
        "phone", "phone_number", "phonenumber", "mobile", "mobile_phone", "mobile_number",
        "cell", "cellphone", "telephone", "tel", "msisdn",
    ],
    "first_name": ["first_name", "firstname", "given_name", "forename", "first", "prenom"],
    "last_name": ["last_name", "lastname", "surname", "family_name", "last", "nom"],
    "gender": ["gender", "sex"],
    "country": ["country", "country_code", "nation"],
    "city": ["city", "town", "locality", "ville"],
    "address": ["address", "street", "street_address", "address_line_1", "address1"],
    "time_zone": [
        "time_zone", "timezone", "tz", "time_zone_name", "timezone_name", "tz_name",
        "iana_time_zone", "iana_timezone", "fuseau_horaire",
    ],
    "company": ["company", "company_name", "organization", "organisation", "employer"],
}  # fmt: skip
_ALIAS_TO_FIELD = {alias: field for field, aliases in ALIASES.items() for alias in aliases}


def default_tag(workspace, *, now) -> str:
    """The tag every imported person gets unless the user changes it."""
    return f"import {timezone.localtime(now, workspace.tzinfo):%Y-%m-%d %H:%M}"


def _looks_like(values: list[str]) -> str | None:
    cells = [v.strip() for v in values if v.strip()]
    if not cells:
        return None
    if sum("@" in c and "." in c.split("@")[-1] for c in cells) > 0.8 * len(cells):
        return "email"
    digits = [c for c in cells if c.startswith("+") and sum(ch.isdigit() for ch in c) >= 8]
    if len(digits) > 0.8 * len(cells):
        return "phone"
    return None


def suggest_mapping(columns: list[str], rows: list[list[str]], *, header: bool,
                    definitions: dict[str, str]) -> list[MappedColumn]:  # fmt: skip
    """A mapping for every column: the field its header names, else an existing custom
    attribute of that name, else a new custom attribute typed from the sample values."""
    by_key = {key.lower(): key for key in definitions}
    taken: set[str] = set()
    mapping = []
    for index, name in enumerate(columns):
        values = [r[index] for r in rows if index < len(r)]
        normalized = normalize_header(name) if header else ""
        field = _ALIAS_TO_FIELD.get(normalized) if header else _looks_like(values)
        if field and field not in taken:
            taken.add(field)
            mapping.append(MappedColumn(index, name, field))
            continue
        if not header:
            mapping.append(MappedColumn(index, name, IGNORE))
            continue
        key = attribute_key_for(name, index)
        existing = by_key.get(name.strip().lower()) or by_key.get(key.lower())
        if existing and f"attr:{existing}" not in taken:
            taken.add(f"attr:{existing}")
            mapping.append(MappedColumn(index, name, ATTRIBUTE, existing, definitions[existing]))
        elif f"attr:{key}" not in taken and key not in FIELD_LABELS:
            taken.add(f"attr:{key}")
            mapping.append(
                MappedColumn(index, name, ATTRIBUTE, key, infer_text_type(values), new=True)
            )
        else:
            mapping.append(MappedColumn(index, name, IGNORE))
    return mapping


def default_dedupe(mapping: list[MappedColumn]) -> str:
    targets = {c.target for c in mapping}
    for key in DEDUPE_KEYS:
        if key in targets:
            return key
    return "external_id"


def _same_columns(mapping: list[dict], columns: list[str]) -> bool:
    return len(mapping) == len(columns) and all(
        int(m.get("column", -1)) == i and m.get("header") == columns[i]
        for i, m in enumerate(mapping)
    )


def prepare(job: ContactImport, *, now) -> tuple[dict, dict, list[str]]:
    """(analysis, options, problems) from the file's first 64 KB and the user's choices so
    far (job.options): detection fills whatever the user has not chosen."""
    chosen = dict(job.options or {})
    definitions = dict(
        AttributeDefinition.objects.for_workspace(job.workspace_id).values_list("key", "type")
    )
    known = set(_ALIAS_TO_FIELD) | {normalize_header(k) for k in definitions}
    path = media_path(job.file)
    sniffed = sniff(
        str(path),
        known_names=known,
        encoding=chosen.get("encoding") or None,
        separator=chosen.get("separator") or None,
        header=chosen.get("header"),
    )
    rows = sniffed.rows
    if sniffed.header:
        columns = [c.strip().lstrip("\ufeff").strip() or f"Column {i + 1}"
                   for i, c in enumerate(rows[0])]  # fmt: skip
        data = rows[1:]
    else:
        width = Counter(len(r) for r in rows).most_common(1)[0][0]
        columns = [f"Column {i + 1}" for i in range(width)]
        data = rows
    if len(columns) > MAX_COLUMNS:
        raise SourceError(
            f"The file has {len(columns):,} columns; a contact import takes up to "
            f"{MAX_COLUMNS}. Remove the columns you do not need (or check the separator)."
        )
    sample_rows = data[:INFERENCE_ROWS]
    suggested = suggest_mapping(
        columns, sample_rows, header=sniffed.header, definitions=definitions
    )
    if chosen.get("mapping") and _same_columns(chosen["mapping"], columns):
        chosen_columns = [MappedColumn.from_dict(m) for m in chosen["mapping"]]
        mapping = apply_definitions(chosen_columns, definitions)
    else:
        mapping = suggested
    dedupe = chosen.get("dedupe") or default_dedupe(mapping)
    options = {
        "encoding": sniffed.encoding,
        "separator": sniffed.separator,
        "header": sniffed.header,
        "mapping": [c.as_dict() for c in mapping],
        "dedupe": dedupe,
        "policy": chosen.get("policy") or ContactImport.Policy.SKIP,
        "tags": chosen["tags"] if "tags" in chosen else [default_tag(job.workspace, now=now)],
        "phone_region": chosen.get("phone_region", ""),
    }
    sample_size = len(read_sample(str(path)))
    analysis = {
        "encoding": sniffed.encoding,
        "encoding_label": sniffed.encoding_label,
        "language": sniffed.language,
        "separator": sniffed.separator,
        "separator_label": SEPARATOR_LABELS[sniffed.separator],
        "header": sniffed.header,
        "columns": columns,
        "preview": [[cell[:200] for cell in r] for r in data[:PREVIEW_ROWS]],
        "suggested": [c.as_dict() for c in suggested],
        "estimated_rows": _estimate_rows(job.file_size, sample_size, len(rows)),
    }
    return analysis, options, mapping_problems(mapping, dedupe=dedupe)


def _estimate_rows(file_size: int, sample_size: int, sample_rows: int) -> int:
    if not sample_size or not sample_rows:
        return 0
    return max(sample_rows, int(file_size * sample_rows / sample_size))


def count_rows(job: ContactImport, *, analysis: dict, options: dict, progress,
               helpers: int | None = None) -> dict:  # fmt: skip
    """The streamed full pass: rows, errors (report + first ones), new vs existing."""
    if helpers is None:
        helpers = helper_count(job.file_size)
    report = error_report(workspace_id=job.workspace_id, import_id=job.id)
    stage_name, final_name = staging.table_names(job.id, "analyze")
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        stage = staging.Stage(cursor, stage_name, ANALYZE_COLUMNS)
        try:
            stage.create()
            processed = stage_file(
                path=media_path(job.file),
                options=options,
                width=len(analysis["columns"]),
                stage=stage,
                report=report,
                progress=progress,
                helpers=helpers,
                every=PROGRESS_EVERY,
            )
            report.close()
            stage.analyze()
            with transaction.atomic():
                staging.set_sort_memory(cursor)
                staging.resolve(
                    cursor,
                    stage=stage_name,
                    final=final_name,
                    workspace_id=job.workspace_id,
                    dedupe=options["dedupe"],
                )
                distinct = staging.count_rows(cursor, final_name)
                existing = staging.count_existing(
                    cursor, final=final_name, workspace_id=job.workspace_id
                )
        except BaseException:
            stage.abort()
            report.discard()
            raise
        finally:
            staging.drop_quietly(cursor, stage_name, final_name)
    return {
        "rows": processed,
        "valid": stage.rows,
        "errors": report.count,
        "first_errors": report.first,
        "error_report": report.relative if report.count else "",
        "duplicates": stage.rows - distinct,
        "existing": existing,
        "new": distinct - existing,
    }
