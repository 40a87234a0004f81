"""campaigns/templating.py: content checked on save (shape, Liquid at its line, HTML
sanitized with its CSS inlined) and rendered per person in the sandbox."""

import time
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from campaigns.templating import (
    MAX_BODY_BYTES,
    PERSON_ROW_FIELDS,
    TEMPLATED_FIELDS,
    RenderError,
    clean_content,
    compile_content,
    person_context,
    person_context_from_row,
    preview,
    sms_preview,
)
from people.models import Person
from tests.factories import CompanyFactory, PersonFactory


def person(**fields):
    attributes = fields.pop("attributes", {})
    return person_context_from_row({**fields, "attributes": attributes})


def render(channel, content, who=None, *, draft=False):
    cleaned = clean_content(channel, content, draft=draft)
    return compile_content(channel, cleaned).render(who if who is not None else person())


def errors_of(channel, content, **kwargs):
    with pytest.raises(ValidationError) as caught:
        clean_content(channel, content, **kwargs)
    return {field: messages[0] for field, messages in caught.value.message_dict.items()}


def email(**fields):
    return {"subject": "Hello", "text": "Hi", **fields}


# --- Personalization -----------------------------------------------------------------------


def test_default_fills_in_for_an_empty_built_in_field():
    content = email(subject='Hi {{ person.first_name | default: "there" }}!')
    assert render("email", content, person(first_name=""))["subject"] == "Hi there!"
    assert render("email", content, person(first_name="Ann"))["subject"] == "Hi Ann!"


def test_custom_attributes_and_built_ins_are_read():
    content = email(
        text="{{ person.attributes.plan }} / {{ person.city }} / {{ person.company }}"
        " / {{ person.attributes.seats | plus: 1 }}"
    )
    who = person(city="London", company__name="Acme", attributes={"plan": "pro", "seats": 4})
    assert render("email", content, who)["text"] == "pro / London / Acme / 5"


def test_an_unknown_variable_renders_empty_and_is_not_an_error():
    content = email(
        text="[{{ person.nope }}][{{ person.attributes.missing.deeper }}]"
        "[{% for x in person.attributes.absent %}{{ x }}{% endfor %}]"
        "[{% if person.attributes.vip %}vip{% endif %}]"
    )
    assert render("email", content, person(attributes={}))["text"] == "[][][][]"


def test_a_field_without_liquid_is_copied_as_stored():
    cleaned = clean_content("sms", {"body": "Plain text, 50% off {not liquid}"})
    compiled = compile_content("sms", cleaned)
    assert compiled.render(person())["body"] == "Plain text, 50% off {not liquid}"


def test_push_buttons_titles_and_urls_are_templated():
    content = {
        "title": "For {{ person.first_name }}",
        "buttons": [
            {"id": "buy", "title": "Buy, {{ person.first_name }}",
             "url": "https://s.test/{{ person.external_id }}"},
            {"id": "later", "title": "Later"},
        ],
        "data": {"campaign": "{{ not templated }}"},
    }  # fmt: skip
    out = render("push", content, person(first_name="Ann", external_id="p-1"))
    assert out["title"] == "For Ann"
    assert out["buttons"][0] == {"id": "buy", "title": "Buy, Ann", "url": "https://s.test/p-1"}
    assert out["buttons"][1]["title"] == "Later"
    assert out["data"] == {"campaign": "{{ not templated }}"}
    assert "buttons.*.title" in TEMPLATED_FIELDS["push"]


def test_renders_do_not_leak_into_each_other():
    compiled = compile_content("push", clean_content("push", {
        "title": "x", "buttons": [{"id": "a", "title": "{{ person.first_name }}"}],
    }))  # fmt: skip
    first = compiled.render(person(first_name="Ann"))
    second = compiled.render(person(first_name="Bob"))
    assert (first["buttons"][0]["title"], second["buttons"][0]["title"]) == ("Ann", "Bob")


def test_a_line_break_in_a_persons_data_does_not_break_a_header():
    out = render(
        "email", email(subject="Hi {{ person.first_name }}"), person(first_name="A\r\nBcc: x")
    )
    assert out["subject"] == "Hi A Bcc: x"


def test_a_subject_with_a_line_break_is_refused():
    assert errors_of("email", email(subject="Hi\nthere")) == {"subject": "must be one line"}


# --- Errors at their field and line ----------------------------------------------------------


def test_a_syntax_error_names_the_field_and_the_line():
    errors = errors_of("email", email(html="<p>one</p>\n<p>two</p>\n<p>{% if %}</p>"))
    assert list(errors) == ["html"]
    assert errors["html"].startswith("line 3: ")
    assert "missing expression" in errors["html"]


def test_an_unclosed_output_is_an_error_at_its_line():
    errors = errors_of("email", email(subject="Hi {{ person.first_name"))
    assert errors["subject"].startswith("line 1: ")


def test_a_syntax_error_in_a_button_title_names_the_button():
    content = {"title": "x", "buttons": [
        {"id": "a", "title": "ok"}, {"id": "b", "title": "{{ person.first_name"},
    ]}  # fmt: skip
    errors = errors_of("push", content)
    assert list(errors) == ["buttons.1.title"]
    assert errors["buttons.1.title"].startswith("line 1: ")


def test_an_unknown_filter_is_refused_on_save_even_in_a_branch_not_taken():
    errors = errors_of("sms", {"body": "Hi\n{% if false %}{{ person.city | shout }}{% endif %}"})
    assert errors == {"body": "line 2: unknown filter 'shout'"}


def test_every_field_in_error_is_reported_at_once():
    errors = errors_of("email", {"subject": 3, "preheader": "{{", "reply_to": "nope", "x": 1})
    assert set(errors) == {"subject", "reply_to", "x"}  # the shape first, Liquid after
    assert errors["x"].startswith("unknown field")


# --- HTML: sanitized, CSS inlined, escaped -----------------------------------------------------


def test_scripts_event_handlers_and_javascript_links_are_removed():
    html = (
        '<p onclick="steal()">Hi</p><script>alert(1)</script>'
        '<a href="javascript:alert(2)">bad</a><a href="https://ok.test/">good</a>'
        '<a href="mailto:a@b.test">mail</a><img src="https://i.test/a.png" onerror="x()">'
    )
    stored = clean_content("email", email(html=html))["html"]
    for gone in ("onclick", "<script", "alert", "javascript:", "onerror"):
        assert gone not in stored
    assert 'href="https://ok.test/"' in stored and 'href="mailto:a@b.test"' in stored
    assert '<img src="https://i.test/a.png">' in stored
    assert "<p>Hi</p>" in stored


def test_css_from_a_style_block_ends_up_inline():
    html = (
        "<html><head><style>p { color: red } .big { font-size: 20px }</style>"
        '<link rel="stylesheet" href="http://127.0.0.1:9/never-fetched.css"></head>'
        '<body><p class="big" style="margin: 0">Hi</p></body></html>'
    )
    stored = clean_content("email", email(html=html))["html"]
    assert "<style" not in stored and "<link" not in stored
    assert "color: red" in stored and "font-size: 20px" in stored and "margin: 0" in stored


def test_liquid_survives_sanitizing_even_between_table_rows():
    html = (
        "<table>{% for i in (1..2) %}<tr><td>{{ i }}</td></tr>{% endfor %}</table>"
        '<a href="https://s.test/?u={{ person.external_id }}">go</a>'
    )
    stored = clean_content("email", email(html=html))["html"]
    # the parser's implied <tbody> comes after the loop's start: rendered, each row gets
    # its own, which is still one table (the render-time pass closes them)
    assert "<table>{% for i in (1..2) %}<tbody><tr><td>{{ i }}</td></tr>{% endfor %}" in stored
    assert 'href="https://s.test/?u={{ person.external_id }}"' in stored
    out = compile_content("email", clean_content("email", email(html=html)))
    rendered = out.render(person(external_id="p-9"))["html"]
    assert rendered.count("<tr>") == 2 and "<td>1</td>" in rendered and "<td>2</td>" in rendered
    assert "u=p-9" in rendered


def test_saving_stored_html_again_changes_nothing():
    html = '<style>p{color:red}</style><p>Hi {{ person.first_name | default: "you" }}</p>'
    stored = clean_content("email", email(html=html))["html"]
    assert clean_content("email", email(html=stored))["html"] == stored


def test_liquid_the_sanitizer_removes_is_an_error_at_its_line():
    html = "<p>Hi</p>\n<script>{% if person.city %}x{% endif %}</script>"
    errors = errors_of("email", email(html=html))
    assert errors["html"].startswith("line 2: {% if person.city %} was removed")


def test_html_escapes_a_persons_data_and_text_does_not():
    content = email(text="Hi {{ person.first_name }}", html="<p>Hi {{ person.first_name }}</p>")
    out = render("email", content, person(first_name="<b>x</b>"))
    assert out["html"] == "<p>Hi &lt;b&gt;x&lt;/b&gt;</p>"
    assert out["text"] == "Hi <b>x</b>"


def test_markup_liquid_assembles_is_sanitized_when_rendered():
    html = (
        '<p>{{ "<scr" | append: "ipt>alert(1)</script>" }}</p>'
        '<a href="{{ person.attributes.link }}">link</a>'
    )
    out = render("email", email(html=html), person(attributes={"link": "javascript:alert(1)"}))
    assert "<script" not in out["html"] and "javascript:" not in out["html"]
    assert ">link</a>" in out["html"]


def test_a_push_link_to_javascript_is_refused_on_save_and_dropped_when_rendered():
    assert "url" in errors_of("push", {"title": "x", "url": "java\tscript:alert(1)"})
    out = render("push", {"title": "x", "url": "{{ person.attributes.u }}"},
                 person(attributes={"u": "javascript:alert(1)"}))  # fmt: skip
    assert out["url"] == ""
    out = render("push", {"title": "x", "url": "myapp://orders/{{ person.external_id }}"},
                 person(external_id="7"))  # fmt: skip
    assert out["url"] == "myapp://orders/7"


# --- Sizes and limits -------------------------------------------------------------------------


def test_a_body_of_one_megabyte_and_one_byte_is_refused_with_a_clear_message():
    assert clean_content("email", email(text="a" * MAX_BODY_BYTES))["text"]
    errors = errors_of("email", email(text="a" * (MAX_BODY_BYTES + 1)))
    assert errors == {"text": "is 1,048,577 bytes long; at most 1 MB (1,048,576 bytes) may be sent"}
    assert "at most 1 MB" in errors_of("email", email(html="é" * (MAX_BODY_BYTES // 2 + 1)))["html"]


def test_a_subject_is_at_most_998_characters():
    assert clean_content("email", email(subject="s" * 998))["subject"]
    assert "at most 998" in errors_of("email", email(subject="s" * 999))["subject"]


def test_a_huge_loop_is_stopped_by_the_limit_on_save():
    started = time.monotonic()
    errors = errors_of("email", email(html="<p>{% for i in (1..1000000000) %}x{% endfor %}</p>"))
    assert time.monotonic() - started < 2
    assert errors["html"].startswith("line 1: loop iteration limit reached")


def test_a_loop_as_long_as_a_persons_data_is_stopped_when_rendered():
    content = email(text="{% for i in (1..person.attributes.n) %}x{% endfor %}")
    compiled = compile_content("email", clean_content("email", content))  # fine for nobody
    with pytest.raises(RenderError) as caught:
        compiled.render(person(attributes={"n": 10**9}))
    assert caught.value.field == "text" and caught.value.limit
    assert "loop iteration limit" in str(caught.value)


def test_ever_larger_assignments_are_stopped():
    growing = "{% assign s = 'xxxxxxxxxx' %}" + "{% assign s = s | append: s %}" * 40
    assert "local namespace limit" in errors_of("sms", {"body": growing + "{{ s | size }}"})["body"]


def test_a_filter_failing_for_one_person_is_a_render_error_naming_the_field():
    compiled = compile_content(
        "sms", clean_content("sms", {"body": "{{ 10 | divided_by: person.attributes.n }}"})
    )
    assert compiled.render(person(attributes={"n": 5}))["body"] == "2"
    with pytest.raises(RenderError) as caught:
        compiled.render(person(attributes={"n": 0}))
    assert caught.value.field == "body" and not caught.value.limit


# --- The sandbox reaches no file ---------------------------------------------------------------


@pytest.mark.parametrize("tag", ["{% include '/etc/passwd' %}", "{% render 'pyproject.toml' %}"])
def test_include_and_render_are_refused_and_read_no_file(tag):
    errors = errors_of("email", email(text=f"Hi\n{tag}"))
    assert errors["text"].startswith("line 2: unexpected tag")
    assert "cannot include other templates or files" in errors["text"]
    with pytest.raises(ValidationError):  # content that skipped clean_content too
        compile_content("email", {"subject": "x", "text": tag})


# --- Shape ----------------------------------------------------------------------------------


def test_unknown_fields_types_and_missing_essentials_are_refused():
    assert errors_of("sms", {"body": "x", "media": "y"}) == {
        "media": "unknown field; the fields are body"
    }
    assert errors_of("sms", {"body": 5}) == {"body": "must be text"}
    assert errors_of("sms", {"body": " "}) == {"body": "an SMS needs a body"}
    assert errors_of("email", {"subject": "s"}) == {"html": "an email needs a text or an HTML body"}
    assert errors_of("email", {"subject": "a\x00b", "text": "x"})["subject"].startswith("holds")
    assert errors_of("email", "not an object") == {"content": "must be an object"}
    assert errors_of("fax", {}) == {"channel": "must be one of email, sms, push, banner"}


def test_a_draft_may_leave_the_essentials_empty_but_not_break_the_shape():
    assert clean_content("sms", {}, draft=True) == {"body": ""}
    assert errors_of("sms", {"body": 1}, draft=True) == {"body": "must be text"}


def test_push_parts_are_checked():
    errors = errors_of("push", {
        "title": "x",
        "image_url": "ftp://x.test/a.png",
        "buttons": [{"id": "a", "title": "A"}, {"id": "a", "title": ""}],
        "ios": {"badge": -1, "interruption_level": "loud"},
        "android": {"priority": "urgent", "color": "red", "ttl_seconds": True},
        "data": {"google.sent_time": "1", "n": 2},
    })  # fmt: skip
    assert set(errors) == {
        "image_url", "buttons.1.id", "buttons.1.title", "ios.badge", "ios.interruption_level",
        "android.priority", "android.color", "android.ttl_seconds", "data.google.sent_time",
        "data.n",
    }  # fmt: skip
    many = [{"id": str(i), "title": "t"} for i in range(4)]
    assert errors_of("push", {"title": "x", "buttons": many}) == {"buttons": "at most 3 buttons"}


def test_banner_defaults_and_priority_range():
    stored = clean_content("banner", {"placement": "top", "title": "Hi"})
    assert stored["priority"] == 50 and stored["dismissible"] is True and stored["cta_url"] == ""
    assert "priority" in errors_of("banner", {"placement": "top", "title": "Hi", "priority": 101})
    assert "dismissible" in errors_of(
        "banner", {"placement": "top", "title": "Hi", "dismissible": "yes"}
    )


# --- People, preview, SMS size -----------------------------------------------------------------


@pytest.mark.django_db
def test_person_context_from_a_person_and_from_a_row_agree(workspace):
    company = CompanyFactory(workspace=workspace, name="Acme")
    someone = PersonFactory(
        workspace=workspace, external_id="p-1", first_name="Ann", last_name="Lee", phone="",
        company=company, attributes={"plan": "pro"},
    )  # fmt: skip
    context = person_context(someone, workspace_time_zone="Europe/Paris")
    assert context["first_name"] == "Ann" and context["company"] == "Acme"
    assert context["phone"] == "" and context["attributes"] == {"plan": "pro"}
    assert context["time_zone"] == "Europe/Paris"
    assert isinstance(context["created_at"], datetime)
    row = Person.objects.for_workspace(workspace).values(*PERSON_ROW_FIELDS).get()
    assert person_context_from_row(row, workspace_time_zone="Europe/Paris") == context


@pytest.mark.django_db
def test_preview_renders_for_the_chosen_person(workspace):
    someone = PersonFactory(workspace=workspace, first_name="Zoë", attributes={"plan": "pro"})
    someone.created_at = datetime(2024, 5, 1, tzinfo=UTC)
    body = 'Hi {{ person.first_name | default: "there" }}, {{ person.attributes.plan }} '
    content = {"body": body + '{{ person.created_at | date: "%Y" }}'}
    assert preview("sms", content, someone) == {"body": "Hi Zoë, pro 2024"}
    with pytest.raises(ValidationError) as caught:
        preview("sms", {"body": "{{ 1 | divided_by: person.attributes.zero }}"}, someone)
    assert "body" in caught.value.message_dict


def test_sms_preview_counts_characters_and_segments():
    assert sms_preview("a" * 161) == {
        "characters": 161, "encoding": "GSM-7", "units": 161, "segments": 2, "per_segment": 153,
    }  # fmt: skip
    assert sms_preview("Zoë 🎉")["encoding"] == "UCS-2"
