"""Entry point of a row-checking helper process: `python -m people.imports.helper`.

Django is set up before the checking code is imported (it reads the models' field sizes).
"""

import os

import django

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from people.imports.checking import helper_main

    helper_main()
