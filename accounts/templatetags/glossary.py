"""{% define "snapshot" %}: a term's one definition (accounts.glossary) in a help text;
{% term "snapshot" "snapshot" %}: the word linked to its entry on the Glossary page."""

from django import template
from django.urls import reverse
from django.utils.html import format_html

from accounts.glossary import GLOSSARY

register = template.Library()


@register.simple_tag
def define(key: str) -> str:
    return GLOSSARY[key].definition


@register.simple_tag
def term(key: str, text: str = "") -> str:
    entry = GLOSSARY[key]
    return format_html(
        '<a class="glossary-term" href="{}#{}" title="{}">{}</a>',
        reverse("glossary"),
        entry.key,
        entry.definition,
        text or entry.word,
    )
